use taskward::supervised;

struct Config {
    retries: u32,
}

#[supervised]
async fn connect(config: &Config) -> Result<u32, std::io::Error> {
    Ok(config.retries)
}

fn main() {
    let config = Config { retries: 3 };
    let _task = connect(&config);
}
