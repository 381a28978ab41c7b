//! Tokens out: the rewritten function, or the user's function beside an error.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, ReturnType};

use crate::parse::PolicyArg;
use crate::validate::Model;

/// The rewritten function: same name, visibility, attributes and generics,
/// without `async` and without the scope and token parameters, returning a
/// lazy `Supervised<R>` whose body runs once the runtime gives it a scope.
pub(crate) fn expand(model: Model) -> TokenStream {
    let Model {
        mut item,
        scope,
        token,
        ready,
        output,
        name,
        policy,
        krate,
    } = model;

    let private = quote!(#krate::__private);
    let scope_var = Ident::new("__taskward_scope", Span::mixed_site());
    let never = Ident::new("__taskward_never", Span::mixed_site());

    // The token first: it borrows the scope, which an owned scope parameter
    // then takes.
    let token_binding = token.map(|token| {
        let (pat, ty) = (token.pat, token.ty);
        quote!(let #pat: #ty = #private::token(&#scope_var);)
    });
    let ready_binding = ready.map(|ready| {
        let (pat, ty) = (ready.pat, ready.ty);
        quote!(let #pat: #ty = #private::ready(&#scope_var);)
    });
    let scope_binding = scope.map(|scope| {
        let (pat, ty) = (scope.pat, scope.ty);
        if scope.by_ref {
            quote!(let #pat: #ty = &#scope_var;)
        } else {
            quote!(let #pat: #ty = #scope_var;)
        }
    });
    let policy = match policy {
        PolicyArg::FailFast => quote!(#private::Policy::FailFast),
        PolicyArg::Supervise => quote!(#private::Policy::Supervise),
    };

    // Spanned on the user's return type, so a type that is not a valid task
    // result is reported there.
    let output_span = output.span();
    let task_type = quote_spanned!(output_span=> #private::Supervised<#output>);

    let stmts = &item.block.stmts;
    let body = quote! {
        #private::Supervised::new(
            #name,
            #policy,
            move |#scope_var: #private::Scope| -> #private::BoxFuture<#output> {
                #private::Box::pin(async move {
                    #token_binding
                    #ready_binding
                    #scope_binding
                    // Fixes the type of the block (for `?` and `return`) before
                    // the body is checked.
                    #[allow(unreachable_code, clippy::diverging_sub_expression)]
                    if let #private::Option::Some(#never) = #private::Option::None::<#output> {
                        return #never;
                    }
                    #(#stmts)*
                })
            },
        )
    };

    item.sig.asyncness = None;
    item.sig.output = ReturnType::Type(Default::default(), Box::new(syn::parse_quote!(#task_type)));
    let must_use = if item.attrs.iter().any(|attr| attr.path().is_ident("must_use")) {
        None
    } else {
        Some(
            quote!(#[must_use = "a supervised task does nothing until it is spawned on a scope or run with `taskward::run`"]),
        )
    };
    let ItemFn { attrs, vis, sig, .. } = &item;
    quote! {
        #(#attrs)*
        #must_use
        #vis #sig {
            #body
        }
    }
}

/// What is emitted beside an error: the user's function as written, so that
/// one mistake gives one message and the IDE still sees the function.
pub(crate) fn fallback(item: TokenStream, error: &syn::Error) -> TokenStream {
    let mut tokens = error.to_compile_error();
    tokens.extend(item);
    tokens
}
