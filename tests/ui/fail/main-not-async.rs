#[taskward::main]
fn main() {}
