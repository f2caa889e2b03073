//! NVMe definitions and parsing: registers, queue entries, Identify data,
//! PRPs, MDTS splits and protection information.
//!
//! Pure values and functions over byte slices. Nothing here touches a device
//! or the OS, and only `core` is used, so the module builds under `no_std`
//! (core + alloc) for firmware or a boot loader: `nvme/tests/spec_no_std.rs`
//! compiles these files as a `#![no_std]` library to keep it so. Device
//! access lives beside it, in the vfio backend.

pub mod command;
pub mod identify;
pub mod pi;
pub mod prp;
pub mod regs;
