# ruby31-hello: slipway's example for the ruby31 runtime, WEBrick (shipped with it) only.
#
#   GET /            "Hello from ruby31-hello"
#   GET /version     the Ruby version it runs on
#   GET /env/<NAME>  the value of env var NAME (404 when unset)
#
# Listens on $PORT (App Runner sets it; default 8080) and stops cleanly on SIGTERM.
require "webrick"

server = WEBrick::HTTPServer.new(Port: Integer(ENV.fetch("PORT", "8080")), BindAddress: "0.0.0.0")
server.mount_proc "/" do |request, response|
  response["Content-Type"] = "text/plain; charset=utf-8"
  path = request.path
  if path == "/"
    response.body = "Hello from ruby31-hello\n"
  elsif path == "/version"
    response.body = "#{RUBY_VERSION}\n"
  elsif path.start_with?("/env/") && ENV.key?(path.delete_prefix("/env/"))
    response.body = "#{ENV[path.delete_prefix("/env/")]}\n"
  else
    response.status = 404
    response.body = "not found\n"
  end
end
trap("TERM") { server.shutdown }
server.start
