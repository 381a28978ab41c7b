//! The attribute's arguments and the item it is placed on, into a small local
//! model.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Item, ItemFn, LitStr, Path, Token};

use crate::errors::Errors;

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(policy);
    syn::custom_keyword!(fail_fast);
    syn::custom_keyword!(supervise);
    syn::custom_keyword!(local);
}

/// Every argument `#[supervised(...)]` accepts, for error messages.
const VALID_ARGS: &str = "`name = \"...\"`, `policy = fail_fast | supervise`, `local` and `crate = path`";

/// The policy chosen with `policy = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyArg {
    FailFast,
    Supervise,
}

/// The arguments of `#[supervised(...)]`, each given at most once.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) policy: Option<PolicyArg>,
    /// `local`: the body need not be `Send` (for `spawn_local`).
    pub(crate) local: Option<Span>,
    pub(crate) krate: Option<Path>,
}

/// Reads the attribute's arguments. An argument that cannot be read is
/// reported and left out, so that the others still apply (`crate = path` in
/// particular, which the code emitted beside the error needs).
pub(crate) fn args(tokens: TokenStream) -> (Args, syn::Result<()>) {
    let mut args = Args::default();
    let mut errors = Errors::default();
    let parser = |input: ParseStream<'_>| {
        while !input.is_empty() {
            if let Err(err) = parse_arg(input, &mut args) {
                errors.push(err);
                skip_to_comma(input)?;
            }
            if !input.is_empty()
                && let Err(err) = input.parse::<Token![,]>()
            {
                errors.push(syn::Error::new(
                    err.span(),
                    format!(
                        "expected `,` between the arguments of `#[supervised]`; the valid arguments are {VALID_ARGS}"
                    ),
                ));
                skip_to_comma(input)?;
                if !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
            }
        }
        Ok(())
    };
    let read = parser.parse2(tokens);
    errors.push_result(read);
    (args, errors.finish())
}

fn parse_arg(input: ParseStream<'_>, args: &mut Args) -> syn::Result<()> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::name) {
        let key: kw::name = input.parse()?;
        if args.name.is_some() {
            return Err(duplicate(key, "name"));
        }
        equals(input, key, "write `name = \"...\"`")?;
        args.name = Some(parse_name(input)?);
    } else if lookahead.peek(kw::policy) {
        let key: kw::policy = input.parse()?;
        if args.policy.is_some() {
            return Err(duplicate(key, "policy"));
        }
        equals(input, key, "write `policy = fail_fast` or `policy = supervise`")?;
        args.policy = Some(parse_policy(input)?);
    } else if lookahead.peek(kw::local) {
        let key: kw::local = input.parse()?;
        if args.local.is_some() {
            return Err(duplicate(key, "local"));
        }
        if input.peek(Token![=]) {
            return Err(syn::Error::new_spanned(
                key,
                "`local` takes no value: write `#[supervised(local)]`",
            ));
        }
        args.local = Some(key.span);
    } else if lookahead.peek(Token![crate]) {
        let key: Token![crate] = input.parse()?;
        if args.krate.is_some() {
            return Err(duplicate(key, "crate"));
        }
        equals(input, key, "write `crate = path`, the path of the `taskward` crate")?;
        args.krate = Some(parse_crate(input)?);
    } else if input.peek(Ident::peek_any) {
        let unknown = Ident::parse_any(input)?;
        // Deadlines and restarts are chosen where the task is spawned.
        let instead = match unknown.to_string().as_str() {
            "timeout" => {
                "; for a deadline, write it at the call: `scope.spawn(worker(id).timeout(Duration::from_secs(5)))`"
            }
            "restart" => {
                "; to restart a failing task, wrap the call: `scope.spawn(taskward::restart(move || worker(id)))`"
            }
            _ => "",
        };
        return Err(syn::Error::new_spanned(
            &unknown,
            format!("unknown argument `{unknown}` of `#[supervised]`; the valid arguments are {VALID_ARGS}{instead}"),
        ));
    } else {
        return Err(syn::Error::new(
            input.span(),
            format!("expected an argument of `#[supervised]`; the valid arguments are {VALID_ARGS}"),
        ));
    }
    Ok(())
}

/// The `=` after a key; `fix` says how the whole argument reads.
fn equals(input: ParseStream<'_>, key: impl ToTokens, fix: &str) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Ok(())
    } else {
        Err(syn::Error::new_spanned(
            key,
            format!("this argument needs a value: {fix}"),
        ))
    }
}

fn parse_name(input: ParseStream<'_>) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        let value: LitStr = input.parse()?;
        if value.value().is_empty() {
            return Err(syn::Error::new_spanned(
                &value,
                "a task name cannot be empty; write a name such as `name = \"worker\"`",
            ));
        }
        return Ok(value);
    }
    let message = match input.fork().parse::<TokenTree>() {
        Ok(TokenTree::Ident(ident)) => format!("the task name is a string: write `name = \"{ident}\"`"),
        _ => "expected the task name as a string, such as `name = \"worker\"`".to_owned(),
    };
    Err(syn::Error::new(input.span(), message))
}

fn parse_policy(input: ParseStream<'_>) -> syn::Result<PolicyArg> {
    if input.peek(kw::fail_fast) {
        input.parse::<kw::fail_fast>()?;
        return Ok(PolicyArg::FailFast);
    }
    if input.peek(kw::supervise) {
        input.parse::<kw::supervise>()?;
        return Ok(PolicyArg::Supervise);
    }
    let message = match input.fork().parse::<TokenTree>() {
        Ok(TokenTree::Literal(literal))
            if ["\"fail_fast\"", "\"supervise\""].contains(&literal.to_string().as_str()) =>
        {
            format!(
                "write the policy without quotes: `policy = {}`",
                literal.to_string().trim_matches('"')
            )
        }
        Ok(found) => {
            format!("unknown policy `{found}`; write `policy = fail_fast` (the default) or `policy = supervise`")
        }
        Err(_) => "expected a policy: write `policy = fail_fast` (the default) or `policy = supervise`".to_owned(),
    };
    Err(syn::Error::new(input.span(), message))
}

fn parse_crate(input: ParseStream<'_>) -> syn::Result<Path> {
    if input.peek(LitStr) {
        let literal: LitStr = input.parse()?;
        return Err(syn::Error::new_spanned(
            &literal,
            format!("write the path without quotes: `crate = {}`", literal.value()),
        ));
    }
    Path::parse_mod_style(input).map_err(|err| {
        syn::Error::new(
            err.span(),
            "expected the path of the `taskward` crate, such as `crate = ::my_facade::taskward`",
        )
    })
}

fn duplicate(key: impl ToTokens, name: &str) -> syn::Error {
    syn::Error::new_spanned(
        key,
        format!("`{name}` is given twice; keep one (the valid arguments are {VALID_ARGS})"),
    )
}

/// Moves `input` to the next `,` at its top level, or to its end.
fn skip_to_comma(input: ParseStream<'_>) -> syn::Result<()> {
    input.step(|cursor| {
        let mut rest = *cursor;
        while let Some((tree, next)) = rest.token_tree() {
            if matches!(&tree, TokenTree::Punct(punct) if punct.as_char() == ',') {
                break;
            }
            rest = next;
        }
        Ok(((), rest))
    })
}

/// The item under the attribute, if it is a function with a body; otherwise
/// an error that says what it is and what to write instead.
pub(crate) fn item(tokens: TokenStream) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(tokens.clone()) {
        Ok(Item::Fn(item)) => Ok(item),
        Ok(Item::Verbatim(verbatim)) => Err(match find_fn_token(&verbatim) {
            Some(fn_token) => syn::Error::new(
                fn_token,
                "`#[supervised]` needs a function with a body; it cannot be placed on a declaration",
            ),
            None => not_an_item(verbatim),
        }),
        Ok(Item::Impl(item)) => Err(syn::Error::new_spanned(
            item.impl_token,
            "`#[supervised]` applies to an `async fn`, not to an `impl` block; put it on each `async fn` of the block",
        )),
        Ok(other) => Err(syn::Error::new(
            item_keyword(&other),
            format!("`#[supervised]` applies to an `async fn`, not to {}", describe(&other)),
        )),
        Err(err) if find_fn_token(&tokens).is_some() => Err(err),
        Err(_) => Err(not_an_item(tokens)),
    }
}

/// The error for an expression or a statement under the attribute, spanned on
/// its first token.
fn not_an_item(tokens: TokenStream) -> syn::Error {
    let span = tokens
        .clone()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |tree| tree.span());
    let message = match syn::parse2::<Expr>(tokens) {
        Ok(Expr::Closure(_)) => {
            "`#[supervised]` applies to an `async fn`, not to a closure; for a task made from a closure, write `taskward::task(|scope| async move { ... })`"
        }
        Ok(Expr::Async(_)) => {
            "`#[supervised]` applies to an `async fn`, not to an `async` block; spawn the block as it is: `scope.spawn(async move { ... })`"
        }
        _ => "`#[supervised]` applies to an `async fn`; write `#[supervised] async fn name(...) { ... }`",
    };
    syn::Error::new(span, message)
}

fn find_fn_token(tokens: &TokenStream) -> Option<Span> {
    tokens.clone().into_iter().find_map(|tree| match tree {
        TokenTree::Ident(ident) if ident == "fn" => Some(ident.span()),
        _ => None,
    })
}

/// The keyword that says what kind of item this is, to point at.
fn item_keyword(item: &Item) -> Span {
    match item {
        Item::Const(item) => item.const_token.span,
        Item::Enum(item) => item.enum_token.span,
        Item::ExternCrate(item) => item.extern_token.span,
        Item::ForeignMod(item) => item.abi.extern_token.span,
        Item::Mod(item) => item.mod_token.span,
        Item::Static(item) => item.static_token.span,
        Item::Struct(item) => item.struct_token.span,
        Item::Trait(item) => item.trait_token.span,
        Item::TraitAlias(item) => item.trait_token.span,
        Item::Type(item) => item.type_token.span,
        Item::Union(item) => item.union_token.span,
        Item::Use(item) => item.use_token.span,
        Item::Macro(item) => item.mac.path.span(),
        _ => item
            .to_token_stream()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |tree| tree.span()),
    }
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::Const(_) => "a constant",
        Item::Enum(_) => "an enum",
        Item::ExternCrate(_) => "an `extern crate` declaration",
        Item::ForeignMod(_) => "an `extern` block",
        Item::Mod(_) => "a module",
        Item::Static(_) => "a static",
        Item::Struct(_) => "a struct",
        Item::Trait(_) | Item::TraitAlias(_) => "a trait",
        Item::Type(_) => "a type alias",
        Item::Union(_) => "a union",
        Item::Use(_) => "a `use` declaration",
        Item::Macro(_) => "a macro",
        _ => "this item",
    }
}
