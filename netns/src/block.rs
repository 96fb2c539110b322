//! Choosing a free /30 inside 198.18.0.0/15, the range RFC 2544 reserves for benchmarking: never
//! a range this machine (or a laptop's Wi-Fi) routes for real.

use std::net::Ipv4Addr;

use crate::NetnsError;
use crate::ip::ip;

/// /30 blocks in 198.18.0.0/15 (2^17 addresses, 4 per block).
const BLOCKS: u32 = 1 << 15;

/// Blocks tried before giving up (each try is two `ip` calls).
const TRIES: u32 = 64;

/// A /30: `host` is the host end's address, `ns` the namespace end's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) host: Ipv4Addr,
    pub(crate) ns: Ipv4Addr,
}

impl Block {
    fn nth(index: u32) -> Self {
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (index % BLOCKS) * 4;
        Self {
            host: Ipv4Addr::from(base + 1),
            ns: Ipv4Addr::from(base + 2),
        }
    }

    /// Free means: no address of the block is on any host interface, and the kernel routes
    /// both addresses by its default route only (no other link claims them).
    fn is_free(self) -> Result<bool, NetnsError> {
        let base = u32::from(self.host) - 1;
        let addresses = ip(&["-o", "-4", "addr", "show"])?;
        let taken = (0..4).any(|i| {
            let address = format!("inet {}/", Ipv4Addr::from(base + i));
            addresses.contains(&address)
        });
        if taken {
            return Ok(false);
        }
        for address in [self.host, self.ns] {
            let routes = ip(&["-o", "-4", "route", "show", "match", &address.to_string()])?;
            if routes.lines().any(|line| !line.starts_with("default")) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// A free block, starting from one derived from `pid` and `serial` so that concurrent
    /// processes (and guards of one process) start apart.
    pub(crate) fn pick(pid: u32, serial: u32) -> Result<Self, NetnsError> {
        let start = pid
            .wrapping_mul(2_654_435_761)
            .wrapping_add(serial.wrapping_mul(97));
        for attempt in 0..TRIES {
            let block = Self::nth(start.wrapping_add(attempt));
            if block.is_free()? {
                return Ok(block);
            }
        }
        Err(NetnsError::NoFreeBlock { tries: TRIES })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_is_inside_the_benchmarking_range() {
        for index in [0, 1, BLOCKS - 1, BLOCKS, u32::MAX] {
            let block = Block::nth(index);
            for address in [block.host, block.ns] {
                let octets = address.octets();
                assert_eq!(octets[0], 198, "{address}");
                assert!(octets[1] == 18 || octets[1] == 19, "{address}");
            }
            assert_eq!(u32::from(block.ns), u32::from(block.host) + 1);
            assert_eq!(u32::from(block.host) % 4, 1, "host end is .1 of its /30");
        }
    }
}
