//! Attribute arguments and the annotated function, into a small local model.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, ItemFn, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(policy);
    syn::custom_keyword!(fail_fast);
    syn::custom_keyword!(supervise);
}

/// Every argument `#[supervised(...)]` accepts, for error messages.
pub(crate) const VALID_ARGS: &str = "`name = \"...\"`, `policy = fail_fast | supervise`, `crate = path`";

/// The policy chosen with `policy = ...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyArg {
    FailFast,
    Supervise,
}

/// The arguments of `#[supervised(...)]`, each at most once.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) policy: Option<PolicyArg>,
    pub(crate) krate: Option<Path>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let key: kw::name = input.parse()?;
                input.parse::<Token![=]>()?;
                let value: LitStr = input.parse()?;
                if args.name.is_some() {
                    return Err(duplicate(key, "name"));
                }
                if value.value().is_empty() {
                    return Err(syn::Error::new_spanned(
                        &value,
                        "a task name cannot be empty; write a name such as `name = \"worker\"`",
                    ));
                }
                args.name = Some(value);
            } else if lookahead.peek(kw::policy) {
                let key: kw::policy = input.parse()?;
                input.parse::<Token![=]>()?;
                let policy = parse_policy(input)?;
                if args.policy.is_some() {
                    return Err(duplicate(key, "policy"));
                }
                args.policy = Some(policy);
            } else if lookahead.peek(Token![crate]) {
                let key: Token![crate] = input.parse()?;
                input.parse::<Token![=]>()?;
                let path = Path::parse_mod_style(input)?;
                if args.krate.is_some() {
                    return Err(duplicate(key, "crate"));
                }
                args.krate = Some(path);
            } else if input.peek(Ident::peek_any) {
                let unknown = Ident::parse_any(input)?;
                return Err(syn::Error::new_spanned(
                    unknown,
                    format!("unknown argument of #[supervised]; the valid arguments are {VALID_ARGS}"),
                ));
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

fn parse_policy(input: ParseStream<'_>) -> syn::Result<PolicyArg> {
    let lookahead = input.lookahead1();
    if lookahead.peek(kw::fail_fast) {
        input.parse::<kw::fail_fast>()?;
        Ok(PolicyArg::FailFast)
    } else if lookahead.peek(kw::supervise) {
        input.parse::<kw::supervise>()?;
        Ok(PolicyArg::Supervise)
    } else if input.is_empty() {
        Err(input.error("expected a policy after `policy =`: `fail_fast` or `supervise`"))
    } else {
        let found: proc_macro2::TokenTree = input.parse()?;
        Err(syn::Error::new_spanned(
            found,
            "unknown policy; write `policy = fail_fast` (the default) or `policy = supervise`",
        ))
    }
}

fn duplicate(key: impl quote::ToTokens, name: &str) -> syn::Error {
    syn::Error::new_spanned(key, format!("`{name}` is given twice; keep one `{name} = ...`"))
}

/// The input of the attribute: arguments, and the item it is placed on.
pub(crate) fn parse(args: TokenStream, item: TokenStream) -> (syn::Result<Args>, syn::Result<ItemFn>) {
    let args = syn::parse2::<Args>(args);
    let is_fn = item
        .clone()
        .into_iter()
        .any(|tt| matches!(&tt, proc_macro2::TokenTree::Ident(ident) if ident == "fn"));
    let item = syn::parse2::<ItemFn>(item).map_err(|err| {
        if is_fn {
            return err;
        }
        syn::Error::new(
            err.span(),
            "#[supervised] applies to an `async fn` (a free function or an associated function); write `#[supervised] async fn name(...)`",
        )
    });
    (args, item)
}
