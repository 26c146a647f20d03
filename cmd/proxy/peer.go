package main

import (
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/ocimirror/proxy/cache"
	"github.com/ocimirror/proxy/cluster"
	"github.com/ocimirror/proxy/config"
	"github.com/ocimirror/proxy/proxy"
)

// peerStreaming returns the options that let a replica waiting for another's
// fill stream the blob from it (cache) and serve its own fills to the others
// (front end): with redis, proxy.peerurl and http.secret. Otherwise it
// returns none and, in a cluster, logs once why streaming is off.
func peerStreaming(cfg *config.Config, log *logrus.Entry) ([]cache.Option, []proxy.Option) {
	if !cfg.Redis.Enabled() {
		return nil, nil
	}
	why := ""
	switch {
	case cfg.Proxy.PeerURL == "":
		why = "proxy.peerurl is not set"
	case cfg.HTTP.Secret == "":
		why = "http.secret is not set (it must be the same on every replica)"
	}
	if why != "" {
		log.Info("peer streaming off: " + why + "; a replica waiting for another's fill serves the blob once it is committed")
		return nil, nil
	}
	signer := cluster.NewPeerSigner(cfg.HTTP.Secret)
	stall := cfg.Proxy.Timeouts.Stall
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 nil, // replicas reach each other directly
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: stall,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
	}}
	log.WithField("peerurl", cfg.Proxy.PeerURL).Info("peer streaming on: replicas waiting for this one's fills stream them from here")
	return []cache.Option{cache.WithPeers(cache.Peers{Self: cfg.Proxy.PeerURL, Signer: signer, Client: client, Stall: stall})},
		[]proxy.Option{proxy.WithPeerFills(signer)}
}
