//! The config parser and validation: any text is a config or an error that names what is wrong,
//! never a panic; and a config that validates, printed (`--print-config`) and read again, is the
//! same config (its printed form is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate::config::{EMBEDDED_DEFAULT, Machine, RawConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let machine = Machine {
        cores: 2,
        pipe_max_size: Some(1 << 20),
    };
    let base =
        || RawConfig::parse(EMBEDDED_DEFAULT, "embedded default").expect("the default parses");
    let Ok(raw) = RawConfig::parse(text, "fuzz.toml") else {
        return;
    };
    let Ok(config) = base().overlay(raw).validate(&machine) else {
        return;
    };
    let printed = config.to_toml();
    let again = RawConfig::parse(&printed, "printed")
        .unwrap_or_else(|e| panic!("printed config does not parse: {e}\n{printed}"));
    let again = base()
        .overlay(again)
        .validate(&machine)
        .unwrap_or_else(|e| panic!("printed config does not validate: {e}\n{printed}"));
    // Comments aside: the printed form says that inline `users` were given, never their
    // passwords, so the config read back has none.
    let code = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(code(&again.to_toml()), code(&printed));
});
