use taskward::{Scope, supervised};

#[supervised]
async fn serve(scope: &'static Scope) -> Result<(), std::io::Error> {
    let _ = scope;
    Ok(())
}

fn main() {}
