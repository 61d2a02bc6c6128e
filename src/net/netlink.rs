//! (to be written)
/// The real kernel backend (rtnetlink + AF_PACKET).
pub struct Kernel;
