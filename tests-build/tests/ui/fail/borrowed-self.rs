use taskward::supervised;

struct Server {
    port: u16,
}

impl Server {
    #[supervised]
    async fn serve(&self) -> Result<u16, std::io::Error> {
        Ok(self.port)
    }
}

fn main() {
    let server = Server { port: 8080 };
    let _task = server.serve();
}
