//! The `#[supervised]` attribute of [taskward](https://docs.rs/taskward).
//!
//! Depend on `taskward` and write `taskward::supervised`; the attribute is
//! documented there.

#![warn(missing_docs)]

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Turns an `async fn` into a supervised task. See the `taskward` crate.
#[proc_macro_attribute]
pub fn supervised(args: TokenStream, item: TokenStream) -> TokenStream {
    supervised2(args.into(), item.into()).into()
}

fn supervised2(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let (parsed_args, parsed_item) = parse::parse(args, item.clone());
    let result = match (parsed_args, parsed_item) {
        (Ok(args), Ok(fn_item)) => validate::validate(args, fn_item).map(expand::expand),
        (Err(mut err), Err(item_err)) => {
            err.combine(item_err);
            Err(err)
        }
        (Err(err), Ok(_)) | (Ok(_), Err(err)) => Err(err),
    };
    result.unwrap_or_else(|err| expand::fallback(item, &err))
}
