"""Container images: OCI image layouts, registry pushes and registry credentials."""
