//! `--max-connections-per-ip`: how many sessions one client IP holds. A permit is taken at the
//! upgrade and lives inside the session; dropping it (the session ended, whatever the reason)
//! gives the slot back, and an IP with no session left is forgotten, so the map holds only
//! IPs with open sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Open sessions per IP, bounded by `limit` (0: no limit, nothing counted).
#[derive(Debug, Clone)]
pub(crate) struct PerIp {
    limit: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One session's slot for its IP; gives it back on drop.
#[derive(Debug)]
pub(crate) struct IpPermit {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            open: Arc::default(),
        }
    }

    /// The limit (0: off).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for `ip`, or `Err` when it holds `limit` sessions already. `Ok(None)` when
    /// the limit is off or the IP is unknown.
    pub(crate) fn acquire(&self, ip: Option<IpAddr>) -> Result<Option<IpPermit>, ()> {
        let Some(ip) = ip.filter(|_| self.limit > 0) else {
            return Ok(None);
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= self.limit {
            return Err(());
        }
        *count += 1;
        Ok(Some(IpPermit {
            ip,
            open: self.open.clone(),
        }))
    }
}

impl Drop for IpPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_hold_and_come_back() {
        let per_ip = PerIp::new(2);
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        let a = per_ip.acquire(ip).expect("first");
        let _b = per_ip.acquire(ip).expect("second");
        assert!(per_ip.acquire(ip).is_err());
        assert!(per_ip.acquire(Some(IpAddr::from([10, 0, 0, 2]))).is_ok());
        drop(a);
        assert!(per_ip.acquire(ip).is_ok());
    }
}
