module example.com/go1-hello

go 1.18
