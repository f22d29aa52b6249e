"""The only place that knows the Alibaba Cloud CDN API: signing, errors, the client and batch pushing."""
