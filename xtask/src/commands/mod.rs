pub mod dev;
pub mod test;
