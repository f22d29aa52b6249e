"""The only place that knows the Alibaba Cloud CDN API: signing, the code table, transport, the client and the adapter (ports.CdnApi)."""
