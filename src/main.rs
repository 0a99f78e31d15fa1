use clap::Parser;

fn main() {
    let cli = stochlab::cli::Cli::parse();
    let code = match stochlab::app::main(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line a user can act on: the chain of contexts, outermost first.
            eprintln!("error: {}", stochlab::app::one_line(&err));
            1
        }
    };
    std::process::exit(code);
}
