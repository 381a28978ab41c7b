//! The boundary: parse → validate → expand, with every error turned into
//! `compile_error!` here and nowhere else.

use proc_macro2::TokenStream;

use crate::{expand, parse, validate};

/// `#[supervised(args)] item`, on `proc_macro2` tokens so that tests can
/// call it.
pub(crate) fn supervised2(args: TokenStream, item: TokenStream) -> TokenStream {
    let (args, args_checked) = parse::args(args);
    let item_fn = match parse::item(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(mut err) => {
            if let Err(args_err) = args_checked {
                err.combine(args_err);
            }
            return expand::unchanged(item, &err);
        }
    };
    match (validate::validate(&args, &item_fn), args_checked) {
        (Ok(model), Ok(())) => expand::expand(model),
        // A bad argument leaves the function itself intact: rewrite it with
        // the arguments that could be read.
        (Ok(model), Err(args_err)) => {
            let mut tokens = args_err.to_compile_error();
            tokens.extend(expand::expand(model));
            tokens
        }
        (Err(mut err), args_checked) => {
            if let Err(args_err) = args_checked {
                err.combine(args_err);
            }
            let krate = args.krate.unwrap_or_else(validate::default_crate);
            expand::stub(&item_fn, &krate, &err)
        }
    }
}
