"""remask on Ray Serve: the application builder (:mod:`services.serve.app`), the ingress's
engine over deployment handles (:mod:`services.serve.engine`) and the Ray-free replica logic
(:mod:`services.serve.replicas`). Importing this package does not import Ray."""
