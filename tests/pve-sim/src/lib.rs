//! Proxmox VE API simulator (in progress).
