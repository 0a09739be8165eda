//! The `mllp` command-line tool: demo, listen, send, bench.

mod cli;

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("bench") => {
            let report = cli::bench::run(&cli::bench::BenchConfig::default());
            match report {
                Ok(r) => cli::bench::print(&r, &mut std::io::stdout()).expect("stdout"),
                Err(e) => {
                    eprintln!("mllp: {e}");
                    std::process::exit(2);
                }
            }
        }
        _ => {
            eprintln!("usage: mllp bench");
            std::process::exit(2);
        }
    }
}
