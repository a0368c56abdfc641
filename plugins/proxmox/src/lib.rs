//! proxmox plugin (in progress).
