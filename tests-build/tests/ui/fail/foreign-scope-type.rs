// A type of another crate named `Scope`, imported under that name, is taken
// for taskward's scope: the error is at the parameter and says how to pass
// it as an argument, or how to mark a scope of another name.
use taskward::supervised;

mod oauth {
    pub struct Scope(pub &'static str);
}

use oauth::Scope;

#[supervised]
async fn fetch(scope: Scope) -> Result<(), std::io::Error> {
    let _ = scope.0;
    Ok(())
}

fn main() {}
