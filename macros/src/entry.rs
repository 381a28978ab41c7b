//! The boundary: parse → validate → expand, with every error turned into
//! `compile_error!` here and nowhere else.

use proc_macro2::TokenStream;

use crate::{expand, parse, validate};

/// `#[supervised(args)] item`, on `proc_macro2` tokens so that tests can
/// call it.
pub(crate) fn supervised2(args: TokenStream, item: TokenStream) -> TokenStream {
    let raw_args = args.clone();
    let (args, args_checked) = parse::args(args);
    let item_fn = match parse::item(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(err) => return expand::unchanged(item, &in_source_order(args_checked, err)),
    };
    if args_checked.is_ok()
        && let Some(reordered) = expand::instrument_first(&item_fn, raw_args, args.krate.as_ref())
    {
        return reordered;
    }
    match (args_checked, validate::validate(&args, &item_fn)) {
        (Ok(()), Ok(model)) => expand::expand(model),
        // A bad argument leaves the function itself intact: it is rewritten
        // with the arguments that could be read.
        (Err(args_err), Ok(model)) => {
            let mut tokens = args_err.to_compile_error();
            tokens.extend(expand::expand(model));
            tokens
        }
        (args_checked, Err(err)) => {
            let krate = args.krate.unwrap_or_else(validate::default_crate);
            expand::stub(
                &item_fn,
                &krate,
                args.local.is_some(),
                &in_source_order(args_checked, err),
            )
        }
    }
}

/// The errors of the arguments, if any, then `err`: the order they are
/// written in.
fn in_source_order(args_checked: syn::Result<()>, err: syn::Error) -> syn::Error {
    match args_checked {
        Ok(()) => err,
        Err(mut all) => {
            all.combine(err);
            all
        }
    }
}
