use taskward::supervised;

struct Label(u32);

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[supervised(name = "job-{label}")]
async fn job(label: Label) -> Result<(), std::io::Error> {
    Ok(())
}

fn main() {
    let _task = job(Label(1));
}
