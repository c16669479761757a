<?php
// php81-hello: slipway's example for the php81 runtime, PHP's built-in web server.
//
//   GET /            "Hello from php81-hello"
//   GET /version     the PHP version it runs on
//   GET /env/<NAME>  the value of env var NAME (404 when unset)
header('Content-Type: text/plain; charset=utf-8');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/') {
    echo "Hello from php81-hello\n";
} elseif ($path === '/version') {
    echo PHP_VERSION, "\n";
} elseif (str_starts_with($path, '/env/') && getenv(urldecode(substr($path, 5))) !== false) {
    echo getenv(urldecode(substr($path, 5))), "\n";
} else {
    http_response_code(404);
    echo "not found\n";
}
