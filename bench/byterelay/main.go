// Command byterelay is the cheapest TCP hop there is: it accepts a
// connection, dials the target and copies bytes both ways. It knows nothing
// about SMTP; in the relay benchmark it is the floor any proxy is measured
// against.
//
//	go run ./bench/byterelay -listen 127.0.0.1:P -to 127.0.0.1:Q
package main

import (
	"flag"
	"io"
	"log"
	"net"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept connections on")
	to := flag.String("to", "", "address to relay each connection to")
	flag.Parse()
	if *to == "" {
		log.Fatal("byterelay: -to is required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("byterelay: %s -> %s", ln.Addr(), *to)
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go relay(c, *to)
	}
}

func relay(c net.Conn, to string) {
	defer c.Close()
	d, err := net.Dial("tcp", to)
	if err != nil {
		log.Print(err)
		return
	}
	defer d.Close()
	done := make(chan struct{})
	go func() {
		// Between two TCP conns io.Copy uses splice(2) on Linux.
		io.Copy(d, c)
		d.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, d)
	c.(*net.TCPConn).CloseWrite()
	<-done
}
