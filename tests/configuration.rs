//! Configuration layering, in its own test binary: it sets process-wide
//! environment variables that other tests must not see.

#[test]
fn environment_variables_override_any_setting() {
    // Only this test sets these variables, and it reads them back at once.
    std::env::set_var("SURGE__ENGINE__SHARDS", "7");
    std::env::set_var("SURGE__HTTP__ADDR", "127.0.0.1:9999");
    std::env::set_var("SURGE__ADMIN__FAULT_INJECTION", "true");
    let settings = surge::configuration::load().unwrap();
    std::env::remove_var("SURGE__ENGINE__SHARDS");
    std::env::remove_var("SURGE__HTTP__ADDR");
    std::env::remove_var("SURGE__ADMIN__FAULT_INJECTION");
    assert_eq!(settings.engine.shards, 7);
    assert_eq!(settings.http.addr, "127.0.0.1:9999");
    assert!(settings.admin.fault_injection);
}
