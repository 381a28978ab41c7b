#[taskward::main(grace = "10 seconds")]
async fn main() {}
