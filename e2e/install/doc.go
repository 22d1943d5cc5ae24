// Package install tests install.sh on a fresh Debian root made with debootstrap:
// booted under systemd-nspawn where the machine allows it, else in a chroot.
package install
