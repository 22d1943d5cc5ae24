package tlsmgr

import (
	"crypto/tls"
	"fmt"
	"os"
	"time"
)

// fileStamp identifies a version of a file on disk; a change in either field means the
// file was rewritten.
type fileStamp struct {
	mtime time.Time
	size  int64
}

func stat(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// loadFiles loads the certificate and key files and remembers their stamps.
func (m *Manager) loadFiles() error {
	// Stamps are taken before reading, so a write racing with the read shows up as a
	// change at the next check rather than being missed.
	var stamps [2]fileStamp
	for i, p := range []string{m.certFile, m.keyFile} {
		s, err := stat(p)
		if err != nil {
			m.setErr("", err)
			return fmt.Errorf("load certificate: %w", err)
		}
		stamps[i] = s
	}
	c, err := tls.LoadX509KeyPair(m.certFile, m.keyFile)
	if err != nil {
		err = fmt.Errorf("load certificate %s with key %s: %w", m.certFile, m.keyFile, err)
		m.setErr("", err)
		return err
	}
	if err := c.Leaf.VerifyHostname(m.hostname); err != nil {
		m.log.Warn("certificate does not cover the hostname", "path", m.certFile, "hostname", m.hostname, "names", c.Leaf.DNSNames)
	}
	if time.Now().After(c.Leaf.NotAfter) {
		m.log.Warn("certificate has expired", "path", m.certFile, "not_after", c.Leaf.NotAfter)
	}
	m.cert.Store(&c)
	m.stamps = stamps
	m.setErr("", nil)
	m.log.Info("load certificate", "path", m.certFile, "names", c.Leaf.DNSNames, "not_after", c.Leaf.NotAfter)
	return nil
}

// reloadFilesIfChanged reloads when either file's stamp changed. Called with refreshMu
// held.
func (m *Manager) reloadFilesIfChanged() error {
	for i, p := range []string{m.certFile, m.keyFile} {
		s, err := stat(p)
		if err != nil {
			// Keep serving the loaded certificate: the file may be mid-replacement.
			m.setErr("", fmt.Errorf("check certificate: %w", err))
			return err
		}
		if s != m.stamps[i] {
			return m.loadFiles()
		}
	}
	return nil
}
