//! Tests of the CLI helpers.

use super::*;
use damon_core::AddrRange;

#[test]
fn sim_specs() {
    let p = parse_sim("16G:hot=1G-1.4G@0.8,5G-5.2G@0.5").unwrap();
    assert_eq!(p.space, vec![AddrRange::new(0, 16 << 30)]);
    let hot = &p.phases[0].hot;
    assert_eq!(hot.len(), 2);
    assert_eq!(hot[0].range.start, 1 << 30);
    assert_eq!(hot[0].range.end % 4096, 0);
    assert_eq!(hot[1].probability, 0.5);
    assert!(parse_sim("1G").is_ok());
    for bad in [
        "",
        "0",
        "1X",
        "1G:cold=1-2@1",
        "1G:hot=2M-1M@1",
        "1G:hot=0-2G@1",
        "1G:hot=0-1M@2",
        "1G:hot=0-1M",
        "1G:exit=0",
        "1G:exit=x",
        "1G:hot=0-1M@1:other=1",
    ] {
        assert!(parse_sim(bad).is_err(), "{bad}");
    }
}
