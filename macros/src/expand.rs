//! Tokens out: the rewritten function; or, beside an error, a stub with the
//! rewritten signature, so that callers and the IDE keep working.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Block, Expr, FnArg, ItemFn, Pat, Path, ReturnType, Safety, Stmt, Token, Type};

use crate::parse::PolicyArg;
use crate::validate::{self, Injected, Injection, Model, NameFormat};

/// The rewritten function: same attributes, visibility, name, generics and
/// parameters, less `async` and the injected parameters, returning a lazy
/// `Supervised<R>` whose body runs once the runtime gives it a scope.
pub(crate) fn expand(model: Model) -> TokenStream {
    let Model {
        mut item,
        injected,
        output,
        async_span,
        name,
        name_format,
        policy,
        local,
        krate,
    } = model;

    let private = private(&krate);
    // A function that names neither its scope nor its token (nor a `Ready`)
    // does not take the scope: its body holds no `Scope`, and the runtime
    // does not hand it one. A parameter under a `#[cfg]` counts, compiled
    // in or not.
    let scoped = !injected.is_empty();
    let tokened = injected.iter().any(|param| param.kind == Injection::Token);
    // The task's own `Scope`, hidden from the body. A `&Scope` parameter
    // borrows it: the hidden binding takes that parameter's name and place,
    // so that a borrow that must outlive the body (the reference moved into
    // a `'static` future) is reported as the user's `scope` not living long
    // enough, at the parameter and at the use.
    let scope_var = injected
        .iter()
        .filter(|param| !param.attrs.iter().any(is_statement_attr))
        .find_map(|param| match (&param.kind, &*param.pat) {
            (Injection::Scope, Pat::Ident(binding)) if param.by_ref => Some(syn::Ident::new(
                &binding.ident.to_string(),
                Span::mixed_site().located_at(binding.ident.span()),
            )),
            _ => None,
        })
        .unwrap_or_else(|| syn::Ident::new("__taskward_scope", Span::mixed_site()));
    let never = syn::Ident::new("__taskward_never", Span::mixed_site());
    let body_var = syn::Ident::new("__taskward_body", Span::mixed_site());
    let name_var = syn::Ident::new("__taskward_name", Span::mixed_site());

    // Each value goes through a function whose bound names the expected
    // type, located at the parameter's type: a parameter taken for one of
    // ours by its name but of another type is reported there, with a
    // message that names the markers.
    let mut bindings = Vec::new();
    for kind in Injection::ALL {
        for Injected {
            attrs, pat, ty, by_ref, ..
        } in injected.iter().filter(|param| param.kind == kind)
        {
            let at_ty = private_at(&krate, ty.span());
            let value = match kind {
                Injection::Token => quote_spanned!(ty.span()=> #at_ty::token(&#scope_var)),
                Injection::Ready => quote_spanned!(ty.span()=> #at_ty::ready(&#scope_var)),
                Injection::Scope if *by_ref => quote_spanned!(ty.span()=> #at_ty::scope_ref(&#scope_var)),
                Injection::Scope => quote_spanned!(ty.span()=> #at_ty::scope_owned(#scope_var)),
            };
            let attrs = attrs.iter().filter(|attr| is_statement_attr(attr));
            bindings.push(quote!(#(#attrs)* let #pat: #ty = #value;));
        }
    }
    let policy = match policy {
        PolicyArg::FailFast => quote!(#private::Policy::FailFast),
        PolicyArg::Supervise => quote!(#private::Policy::Supervise),
    };

    // Fixes the type of the async block (for `?` and `return`) before the
    // body is checked.
    let fix_type = quote! {
        if let #private::Option::Some(#never) = #private::Option::None::<#output> {
            return #never;
        }
    };
    let at_async = private_at(&krate, async_span);
    // The type of the `Ready<V>` parameter, which makes the task startable
    // with `V`; the first one written, if two are under `#[cfg]`s.
    let ready = injected
        .iter()
        .find(|param| param.kind == Injection::Ready)
        .map(|param| (*param.ty).clone());
    // Where `output: TaskResult` is required: a result that is not one is
    // reported once, at the user's return type.
    // A result known not to be one is the function's return type already
    // (`set_output`): the body is still checked, but not made a task.
    let make_task = if validate::not_a_result(&output).is_some() {
        quote!({
            let _ = #body_var;
            loop {}
        })
    } else {
        let span = output.span();
        let at_output = private_at(&krate, span);
        let ready = ready.iter();
        let formatted = name_format
            .as_ref()
            .map(|format| quote_spanned!(format.lit.span()=> .formatted(#name_var)));
        // A local body that does not take its scope is handed one all the
        // same (`LocalSupervised` has no other constructor); it drops it.
        // A body that names its token has it made by the spawn
        // (`Supervised::new_with_token`).
        let new = if local {
            quote_spanned!(span=> new)
        } else if tokened {
            quote_spanned!(span=> new_with_token)
        } else if scoped {
            quote_spanned!(span=> new)
        } else {
            quote_spanned!(span=> new_unscoped)
        };
        if local {
            quote_spanned!(span=> #at_output::LocalSupervised::<#output>::#new(&#name, #policy, #body_var) #formatted)
        } else {
            quote_spanned!(span=> #at_output::Supervised::<#output #(, #ready)*>::#new(&#name, #policy, #body_var) #formatted)
        }
    };
    // A parameter the name uses counts as used by the body too.
    let named = name_format.iter().flat_map(|format| &format.captures).cloned();
    let named: Vec<syn::Ident> = named.collect();
    // A formatted name is made from clones of the parameters it names,
    // taken before the body moves them, and formatted when it is first
    // needed. Located at the string, where a parameter that is not `Clone`
    // or not `Send` is reported.
    let format_name = name_format.map(|NameFormat { lit, captures }| {
        let at_lit = private_at(&krate, lit.span());
        let captures = captures.into_iter().map(|mut capture| {
            capture.set_span(lit.span());
            capture
        });
        let captures: Vec<syn::Ident> = captures.collect();
        quote_spanned! {lit.span()=>
            let #name_var = {
                #(let #captures = ::core::clone::Clone::clone(&#captures);)*
                move || #at_lit::format_name(::core::format_args!(#lit))
            };
        }
    });
    let keep = keep_parameters(&mut item);
    let block = macro_braces(&item.block);
    // The body is made now, with the arguments, and takes its scope from
    // the runtime at its first poll if it names its scope or its token
    // (`Supervised::new_unscoped` if not); `Supervised::new` boxes it (one
    // allocation per call), and a spawn takes it back out of the box.
    // All of it is located at the user's `async`, so that a body or a
    // parameter that is not `Send` is reported there, with notes pointing
    // into the body.
    // A local body is not checked for `Send`: it runs on a `LocalSet`.
    let check_send = (!local).then(|| quote_spanned!(async_span=> #at_async::check_send));
    let take_scope =
        scoped.then(|| quote_spanned!(async_span=> let #scope_var: #at_async::Scope = #at_async::scope();));
    let body = quote_spanned! {async_span=>
        {
            #format_name
            let #body_var = #check_send(async move {
                #(#keep)*
                #(let _ = &#named;)*
                #take_scope
                #(#bindings)*
                #fix_type
                #block
            });
            #make_task
        }
    };

    item.sig.asyncness = None;
    // No bound `output: TaskResult` is added to the signature: in a generic
    // function it would hide the value type of `output` from the body
    // (`Supervised::new` checks it instead).
    set_output(&mut item, &krate, &output, ready.as_ref(), local);
    item.block = Box::new(block_of(&item.block, body));
    // Not `#[must_use]`: `Supervised` is, and a call left unused would be
    // reported twice.
    item.into_token_stream()
}

/// Moves every parameter the caller passes into the body, as an `async fn`
/// does, so that each lives until the body ends even if the body never
/// names it (`_permit: OwnedSemaphorePermit`, `_: Guard`): an `async move`
/// block captures only what it uses, and the rest would be dropped when the
/// function returns its task.
///
/// A parameter named by a plain identifier keeps its name (without `mut`,
/// which moves to the binding inside the body); any other pattern (`_`, a
/// tuple, `ref x`) is renamed in the signature and matched inside the body.
/// `self` cannot be rebound: a reference to it makes the body capture it.
fn keep_parameters(item: &mut ItemFn) -> Vec<TokenStream> {
    let mut keep = Vec::new();
    for (index, arg) in item.sig.inputs.iter_mut().enumerate() {
        let typed = match arg {
            FnArg::Receiver(_) => {
                keep.push(quote!(let _ = &self;));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let attrs = typed.attrs.iter().filter(|attr| is_statement_attr(attr));
        let attrs = quote!(#(#attrs)*);
        match &mut *typed.pat {
            Pat::Ident(binding) if binding.by_ref.is_none() && binding.subpat.is_none() => {
                let mutability = binding.mutability.take();
                let ident = &binding.ident;
                keep.push(quote!(#attrs let #mutability #ident = #ident;));
            }
            pat => {
                let arg = format_ident!("__taskward_arg{}", index, span = Span::mixed_site());
                let original = std::mem::replace(
                    pat,
                    Pat::Ident(syn::PatIdent {
                        attrs: Vec::new(),
                        by_ref: None,
                        mutability: None,
                        ident: arg.clone(),
                        subpat: None,
                    }),
                );
                keep.push(quote!(#attrs let #arg = #arg; #attrs let #original = #arg;));
            }
        }
    }
    keep
}

/// Whether `attr`, written on a parameter, also applies to the statement
/// that rebinds it: `cfg` and `cfg_attr` (a parameter compiled out has no
/// binding) and lint levels.
pub(crate) fn is_statement_attr(attr: &syn::Attribute) -> bool {
    ["cfg", "cfg_attr", "allow", "expect", "warn", "deny", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// For a function with `#[tracing::instrument]` below `#[supervised]`: the
/// same function with the instrument attributes moved above
/// `#[supervised(args)]`, so that they are expanded first, on the `async
/// fn` as written (its body is instrumented, its supplied parameters are
/// known to `skip(..)`), and the rewrite applies to what they produce.
/// Below, they would instrument only the call that makes the task.
pub(crate) fn instrument_first(item: &ItemFn, args: TokenStream, krate: Option<&Path>) -> Option<TokenStream> {
    let (instrument, others): (Vec<_>, Vec<_>) = item.attrs.iter().cloned().partition(validate::is_instrument);
    if instrument.is_empty() {
        return None;
    }
    let krate = krate.cloned().unwrap_or_else(validate::default_crate);
    let mut item = item.clone();
    item.attrs = others;
    Some(quote! {
        #(#instrument)*
        #[#krate::supervised(#args)]
        #item
    })
}

/// What is emitted beside `error` when the function breaks a rule: a stub
/// with the signature the rewrite would have (so that callers are checked
/// against it and report nothing more), whose body is the error itself.
pub(crate) fn stub(item: &ItemFn, krate: &Path, local: bool, error: &syn::Error) -> TokenStream {
    let mut item = item.clone();
    let sig = &mut item.sig;
    sig.constness = None;
    sig.asyncness = None;
    sig.safety = Safety::Default;
    sig.abi = None;
    sig.variadic = None;
    let (injected, kept): (Vec<FnArg>, Vec<FnArg>) = std::mem::take(&mut sig.inputs)
        .into_iter()
        .partition(|arg| validate::is_injected(arg, krate));
    sig.inputs = kept.into_iter().collect();
    // The types of the removed parameters are still named, so that their
    // imports do not warn.
    let injected_types: Vec<&Type> = injected
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mention =
        (!injected_types.is_empty()).then(|| quote!(let _: ::core::marker::PhantomData<(#(#injected_types,)*)>;));

    // A borrowed result is replaced by `()` (it would need a lifetime); an
    // `impl Trait` one is kept, without the bound it cannot be named in.
    let (output, bound) = match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), true),
        ReturnType::Type(_, ty) => match validate::output_problems(ty) {
            (false, impl_trait) => ((**ty).clone(), !impl_trait),
            (true, _) => (syn::parse_quote!(()), true),
        },
    };
    // The stub is startable as the function would be, so that a `start`
    // of it reports nothing more (a borrowed `&Ready<V>` as `Ready<V>`).
    let ready = injected.iter().find_map(|arg| match arg {
        FnArg::Typed(typed) if matches!(validate::injection(typed, krate), Ok(Some(Injection::Ready))) => {
            Some(validate::strip_reference(&typed.ty).clone())
        }
        _ => None,
    });
    set_output(&mut item, krate, &output, ready.as_ref(), local);
    if bound && validate::not_a_result(&output).is_none() {
        add_bound(&mut item, krate, &output);
    }
    item.attrs.retain(|attr| !validate::is_supervised(attr));
    let errors = error.to_compile_error();
    item.block = Box::new(block_of(&item.block, quote!(#mention #errors)));
    item.into_token_stream()
}

/// What is emitted beside `error` when the attribute is not on a function:
/// the item as written (so that its uses still resolve), or nothing for an
/// expression or a statement.
pub(crate) fn unchanged(tokens: TokenStream, error: &syn::Error) -> TokenStream {
    let mut out = error.to_compile_error();
    if let Ok(item) = syn::parse2::<syn::Item>(tokens) {
        item.to_tokens(&mut out);
    }
    out
}

/// Makes `item` return `Supervised<output>` (`Supervised<output, ready>`
/// for a task with a `Ready` parameter of type `ready`), spanned on the
/// user's return type so that a type that is not a task result is reported
/// there.
///
/// A type that is known not to be one (`u32`, `Option<T>`, a tuple) makes
/// the return type itself the error: every use of the function (spawning
/// it, awaiting its child) then has an erroneous type, about which rustc
/// says nothing more, so the mistake is one error.
fn set_output(item: &mut ItemFn, krate: &Path, output: &Type, ready: Option<&Type>, local: bool) {
    let span = output.span();
    let private = private_at(krate, span);
    let ready = ready.into_iter();
    let ty = match validate::not_a_result(output) {
        Some(message) => quote_spanned!(span=> [(); { ::core::panic!(#message) }]),
        None if local => quote_spanned!(span=> #private::LocalSupervised<#output>),
        None => quote_spanned!(span=> #private::Supervised<#output #(, #ready)*>),
    };
    item.sig.output = ReturnType::Type(Token![->](span), Box::new(Type::Verbatim(ty)));
}

/// Adds the where-clause `output: TaskResult` to a stub, spanned on the
/// whole return type: the stub's signature and body then report nothing
/// more about it.
fn add_bound(item: &mut ItemFn, krate: &Path, output: &Type) {
    // Located at the last token of the type, so that the bound spans all of
    // it.
    let end = output
        .to_token_stream()
        .into_iter()
        .last()
        .map_or_else(|| output.span(), |tree| tree.span());
    let private = private_at(krate, end);
    let bound = syn::PredicateType {
        attrs: Vec::new(),
        lifetimes: None,
        bounded_ty: output.clone(),
        colon_token: Token![:](end),
        bounds: std::iter::once(syn::TypeParamBound::Verbatim(
            quote_spanned!(end=> #private::TaskResult),
        ))
        .collect(),
    };
    // First, so that rustc's suggestions to add a bound go after the user's
    // own predicates.
    item.sig
        .generics
        .make_where_clause()
        .predicates
        .insert(0, syn::WherePredicate::Type(bound));
}

/// The body as written, in braces at the same place that rustc knows to be
/// the macro's: as the tail of the generated `async` block, the user's
/// braces would make a one-line body (`{ Ok(n) }`) trigger `unused_braces`,
/// whose suggested fix would not compile.
fn macro_braces(block: &Block) -> TokenStream {
    let stmts = &block.stmts;
    let mut group = Group::new(Delimiter::Brace, quote!(#(#stmts)*));
    group.set_span(Span::mixed_site().located_at(block.brace_token.span.join()));
    TokenTree::Group(group).into()
}

/// A block with the braces of `original` (and so its spans) around `body`.
fn block_of(original: &Block, body: TokenStream) -> Block {
    Block {
        brace_token: original.brace_token,
        stmts: vec![Stmt::Expr(Expr::Verbatim(body), None)],
    }
}

/// `krate::__private`, with the spans of `krate`.
fn private(krate: &Path) -> TokenStream {
    quote!(#krate::__private)
}

/// `krate::__private`, located at `span` (its hygiene unchanged), so that an
/// error in an expression built from it points at `span`.
fn private_at(krate: &Path, span: Span) -> TokenStream {
    relocate(private(krate), span)
}

/// `tokens`, each moved to the place of `span` but resolved as before.
fn relocate(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut relocated = Group::new(group.delimiter(), relocate(group.stream(), span));
                relocated.set_span(group.span().located_at(span));
                TokenTree::Group(relocated)
            }
            mut other => {
                other.set_span(other.span().located_at(span));
                other
            }
        })
        .collect()
}
