// corretto11-hello: slipway's example for the corretto11 runtime, the JDK's own HTTP server.
//
//   GET /            "Hello from corretto11-hello"
//   GET /version     the Java version it runs on
//   GET /env/<NAME>  the value of env var NAME (404 when unset)
//
// Listens on $PORT (App Runner sets it; default 8080).
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

public class Hello {
    static void reply(HttpExchange exchange, int status, String text) throws IOException {
        byte[] body = (text + "\n").getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "text/plain; charset=utf-8");
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    public static void main(String[] args) throws IOException {
        String port = System.getenv().getOrDefault("PORT", "8080");
        HttpServer server = HttpServer.create(new InetSocketAddress(Integer.parseInt(port)), 0);
        server.createContext("/", exchange -> {
            String path = exchange.getRequestURI().getPath();
            if (path.equals("/")) {
                reply(exchange, 200, "Hello from corretto11-hello");
            } else if (path.equals("/version")) {
                reply(exchange, 200, System.getProperty("java.version"));
            } else if (path.startsWith("/env/") && System.getenv(path.substring(5)) != null) {
                reply(exchange, 200, System.getenv(path.substring(5)));
            } else {
                reply(exchange, 404, "not found");
            }
        });
        server.start();
        System.out.println("corretto11-hello: listening on port " + port);
    }
}
