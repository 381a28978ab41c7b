// As `foreign-scope-type.rs`, with the type borrowed: `&Scope` of a type of
// another crate is one error at the parameter naming the markers.
use taskward::supervised;

mod oauth {
    pub struct Scope(pub &'static str);
}

use oauth::Scope;

#[supervised]
async fn fetch(scope: &Scope) -> Result<(), std::io::Error> {
    let _ = scope.0;
    Ok(())
}

fn main() {}
