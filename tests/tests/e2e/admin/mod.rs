//! The admin plane: tollgate-store's admin API (`api`), the same through `tollgatectl`
//! (`ctl`), what proxies apply of it (`proxies`), and the web console (`console`).

mod api;
mod console;
mod ctl;
mod proxies;
