# Sourced by bench/gateway.sh and bench/proxy.sh (after scripts/start-server.sh, which sets
# `work`). `start_nginx HTTP_CONFIG` runs `$NGINX` in the foreground with one worker on a
# configuration under `$work/nginx` whose `http` block holds HTTP_CONFIG, and sets
# `nginx_pid`. `constant_server PORT` and `plain_proxy PORT` print server blocks for it.
start_nginx() {
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
$1
}
CONF
  "$NGINX" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  nginx_pid=$!
}

# An upstream answering a fixed 200 at once on 127.0.0.1:PORT.
constant_server() {
  echo "  server { listen 127.0.0.1:$1; location / { return 200 \"ok\\n\"; } }"
}

# A plain reverse proxy (no check) on 127.0.0.1:PORT to the upstream named `service`, on
# kept-alive connections.
plain_proxy() {
  cat <<CONF
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://service;
    }
  }
CONF
}
