//! How figures are written: microseconds or milliseconds, thousands separators, MiB.

pub const MIB: f64 = 1024.0 * 1024.0;

pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

pub fn fmt_int(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1}", bytes / MIB)
}
