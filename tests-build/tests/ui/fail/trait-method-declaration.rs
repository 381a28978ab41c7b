use taskward::supervised;

trait Service {
    #[supervised]
    async fn serve(self) -> Result<(), std::io::Error>;
}

fn main() {}
