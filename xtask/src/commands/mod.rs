pub mod bench;
pub mod deploy_checks;
pub mod dev;
pub mod test;
