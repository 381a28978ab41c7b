//! `#[taskward::main]`: the same three steps as `#[supervised]`, for a
//! program's entry point. `parse_args` reads the arguments, `validate`
//! checks the function (through `#[supervised]`'s own rules), `expand`
//! writes a `fn main() -> ExitCode` that builds the runtime and runs the
//! rewritten function as the root of the tree.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{FnArg, Ident, ItemFn, LitInt, LitStr, Path, Token};

use crate::errors::Errors;
use crate::parse::{self as supervised_parse, PolicyArg};
use crate::{expand, validate};

mod kw {
    syn::custom_keyword!(grace);
    syn::custom_keyword!(flavor);
    syn::custom_keyword!(worker_threads);
}

/// Every argument `#[taskward::main(...)]` accepts, for error messages.
const VALID_ARGS: &str =
    "`grace = \"10s\"`, `flavor = \"multi_thread\" | \"current_thread\"`, `worker_threads = n` and `crate = path`";

/// The runtime `main` builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

#[derive(Default)]
struct Args {
    /// The grace period, in milliseconds.
    grace: Option<u64>,
    flavor: Option<(Flavor, LitStr)>,
    worker_threads: Option<LitInt>,
    krate: Option<Path>,
}

/// `#[taskward::main(args)] item`, on `proc_macro2` tokens.
pub(crate) fn main2(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = parse_args(args, &mut errors);
    let krate = args.krate.clone().unwrap_or_else(validate::default_crate);
    let item_fn = match supervised_parse::item(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(err) => {
            let all = match errors.finish() {
                Ok(()) => err,
                Err(mut all) => {
                    all.combine(err);
                    all
                }
            };
            return expand::unchanged(item, &all);
        }
    };
    let inner = check(&item_fn, &krate, &mut errors);
    match (errors.finish(), inner) {
        (Ok(()), Some(inner)) => expand_main(&item_fn, &args, &krate, inner),
        (Err(err), _) => fallback(&item_fn, &err),
        (Ok(()), None) => fallback(&item_fn, &syn::Error::new(Span::call_site(), "invalid `main`")),
    }
}

fn parse_args(tokens: TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args::default();
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            parse_arg(input, &mut args)?;
            if !input.is_empty() {
                input.parse::<Token![,]>().map_err(|err| {
                    syn::Error::new(
                        err.span(),
                        format!("expected `,` between the arguments of `#[taskward::main]`; the valid arguments are {VALID_ARGS}"),
                    )
                })?;
            }
        }
        Ok(())
    };
    errors.push_result(parser.parse2(tokens));
    if let (Some((Flavor::CurrentThread, flavor)), Some(threads)) = (&args.flavor, &args.worker_threads) {
        errors.push(syn::Error::new_spanned(
            threads,
            format!(
                "`worker_threads` applies to the multi-thread runtime; remove it, or write `flavor = \"multi_thread\"` instead of `flavor = {}`",
                flavor.to_token_stream()
            ),
        ));
    }
    args
}

fn parse_arg(input: ParseStream<'_>, args: &mut Args) -> syn::Result<()> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::grace) {
        let key: kw::grace = input.parse()?;
        once(args.grace.is_some(), &key, "grace")?;
        equals(input, &key, "write `grace = \"10s\"`")?;
        let value: LitStr = input.parse()?;
        args.grace = Some(parse_duration(&value)?);
    } else if lookahead.peek(kw::flavor) {
        let key: kw::flavor = input.parse()?;
        once(args.flavor.is_some(), &key, "flavor")?;
        equals(
            input,
            &key,
            "write `flavor = \"multi_thread\"` or `flavor = \"current_thread\"`",
        )?;
        let value: LitStr = input.parse()?;
        let flavor = match value.value().as_str() {
            "current_thread" => Flavor::CurrentThread,
            "multi_thread" => Flavor::MultiThread,
            other => {
                return Err(syn::Error::new_spanned(
                    &value,
                    format!(
                        "unknown flavor `{other}`; write `flavor = \"multi_thread\"` (the default) or `flavor = \"current_thread\"`"
                    ),
                ));
            }
        };
        args.flavor = Some((flavor, value));
    } else if lookahead.peek(kw::worker_threads) {
        let key: kw::worker_threads = input.parse()?;
        once(args.worker_threads.is_some(), &key, "worker_threads")?;
        equals(input, &key, "write `worker_threads = 4`")?;
        let value: LitInt = input.parse()?;
        if value.base10_parse::<usize>().map_or(true, |n| n == 0) {
            return Err(syn::Error::new_spanned(
                &value,
                "`worker_threads` is a number of threads, at least 1",
            ));
        }
        args.worker_threads = Some(value);
    } else if lookahead.peek(Token![crate]) {
        let key: Token![crate] = input.parse()?;
        once(args.krate.is_some(), &key, "crate")?;
        equals(input, &key, "write `crate = path`, the path of the `taskward` crate")?;
        args.krate = Some(Path::parse_mod_style(input)?);
    } else if input.peek(Ident::peek_any) {
        let unknown = Ident::parse_any(input)?;
        return Err(syn::Error::new_spanned(
            &unknown,
            format!("unknown argument `{unknown}` of `#[taskward::main]`; the valid arguments are {VALID_ARGS}"),
        ));
    } else {
        return Err(lookahead.error());
    }
    Ok(())
}

fn once(given: bool, key: &impl ToTokens, name: &str) -> syn::Result<()> {
    if given {
        return Err(syn::Error::new_spanned(
            key,
            format!("`{name}` is given twice; keep one (the valid arguments are {VALID_ARGS})"),
        ));
    }
    Ok(())
}

fn equals(input: ParseStream<'_>, key: &impl ToTokens, fix: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        return Ok(());
    }
    Err(syn::Error::new_spanned(
        key,
        format!("this argument needs a value: {fix}"),
    ))
}

/// `"10s"`, `"500ms"`, `"1.5s"`, `"2m"`, `"1h"`, in milliseconds.
fn parse_duration(value: &LitStr) -> syn::Result<u64> {
    let text = value.value();
    let error = || {
        syn::Error::new_spanned(
            value,
            format!(
                "`{text}` is not a duration; write a number and a unit: `\"500ms\"`, `\"10s\"`, `\"1.5s\"`, `\"2m\"` or `\"1h\"`"
            ),
        )
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(error)?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| error())?;
    let scale = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(error()),
    };
    let millis = (number * scale).round();
    if !(0.0..=1e15).contains(&millis) {
        return Err(error());
    }
    // In range and rounded: the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(millis as u64)
}

/// Checks the function with `#[supervised]`'s rules, and that the runtime
/// supplies all its parameters; returns the rewritten function, renamed, to
/// be nested in `main`.
fn check(item: &ItemFn, krate: &Path, errors: &mut Errors) -> Option<TokenStream> {
    let mut task = item.clone();
    if task.sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            task.sig.fn_token,
            "`#[taskward::main]` needs an `async fn`; add `async` before `fn`",
        ));
        task.sig.asyncness = Some(Token![async](task.sig.fn_token.span));
    }
    if let Some(param) = task.sig.generics.params.first() {
        errors.push(syn::Error::new_spanned(
            param,
            "`main` cannot be generic; remove the generic parameters",
        ));
    }
    task.attrs.clear();
    let args = supervised_parse::Args {
        name: Some(LitStr::new(&item.sig.ident.unraw().to_string(), item.sig.ident.span())),
        policy: None::<PolicyArg>,
        local: None,
        krate: Some(krate.clone()),
    };
    let model = match validate::validate(&args, &task) {
        Ok(model) => model,
        Err(err) => {
            errors.push(err);
            return None;
        }
    };
    for arg in &model.item.sig.inputs {
        let message = match arg {
            FnArg::Receiver(_) => "`main` is not a method; remove `self`",
            FnArg::Typed(_) => {
                "`main` takes no arguments: the runtime supplies only a `&Scope` (or `Scope`) and a `CancellationToken` parameter; read arguments with `std::env::args()`"
            }
        };
        errors.push(syn::Error::new_spanned(arg, message));
    }
    if let Some(ready) = model
        .injected
        .iter()
        .find(|param| param.kind == validate::Injection::Ready)
    {
        errors.push(syn::Error::new_spanned(
            &ready.ty,
            "`main` is not started by a scope: it has no `Ready` to send; remove this parameter",
        ));
    }
    if errors.len() > 0 {
        return None;
    }
    let mut model = model;
    model.item.sig.ident = Ident::new("__taskward_main", Span::mixed_site());
    model.item.vis = syn::Visibility::Inherited;
    Some(expand::expand(model))
}

fn expand_main(item: &ItemFn, args: &Args, krate: &Path, inner: TokenStream) -> TokenStream {
    let private = quote!(#krate::__private);
    let flavor = match (&args.flavor, &args.worker_threads) {
        (Some((Flavor::CurrentThread, _)), _) => quote!(#private::Flavor::CurrentThread),
        (_, Some(threads)) => quote!(#private::Flavor::MultiThread(::core::option::Option::Some(#threads))),
        (_, None) => quote!(#private::Flavor::MultiThread(::core::option::Option::None)),
    };
    let grace = match args.grace {
        Some(millis) => quote!(::core::option::Option::Some(#millis)),
        None => quote!(::core::option::Option::None),
    };
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let task = Ident::new("__taskward_main", Span::mixed_site());
    quote! {
        #(#attrs)*
        #vis fn #ident() -> ::std::process::ExitCode {
            #inner
            #private::main(#flavor, #grace, #task())
        }
    }
}

/// Beside an error: a `main` with the same name whose body is the error.
fn fallback(item: &ItemFn, error: &syn::Error) -> TokenStream {
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let errors = error.to_compile_error();
    quote! {
        #(#attrs)*
        #vis fn #ident() {
            #errors
        }
    }
}
