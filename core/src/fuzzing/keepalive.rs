/// Fuzz body (in progress).
pub fn keepalive(_data: &[u8]) {}
