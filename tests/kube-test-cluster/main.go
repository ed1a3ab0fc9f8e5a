// kube-test-cluster runs a real Kubernetes control plane for credential-guard's end-to-end tests.
//
// It is test equipment, not product code: the product is Rust. It imports the upstream modules
// (k8s.io/kubernetes, go.etcd.io/etcd/server/v3) and runs them in process, configured like a
// production cluster (RBAC, ServiceAccount tokens, TLS from a CA it makes, no alpha/beta APIs).
//
//	kube-test-cluster apiserver --dir DIR [--port N]
//	    embedded etcd + kube-apiserver; state (etcd data, certificates, tokens, ports) lives in DIR,
//	    so a second run on the same DIR restarts the same cluster on the same port. Without --dir a
//	    temporary directory is used and removed at exit.
//	kube-test-cluster controller-manager --dir DIR
//	    kube-controller-manager against the apiserver whose DIR is given (namespace controller,
//	    garbage collector, ServiceAccount and token controllers).
//
// Each mode prints one JSON line on stdout once it is ready and exits cleanly when stdin closes or
// on SIGTERM/SIGINT. Logs go to stderr.
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/apiserver/pkg/server"
	"k8s.io/component-base/version"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	mode, args := os.Args[1], os.Args[2:]
	var err error
	switch mode {
	case "apiserver":
		err = runAPIServer(args)
	case "controller-manager":
		err = runControllerManager(args)
	case "version":
		fmt.Println(version.Get().GitVersion)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-test-cluster %s: %v\n", mode, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kube-test-cluster apiserver [--dir DIR] [--port N] | controller-manager --dir DIR | version")
	os.Exit(2)
}

// ready is the one JSON line printed once the component serves.
type ready struct {
	Server     string `json:"server"`
	Kubeconfig string `json:"kubeconfig"`
	CA         string `json:"ca"`
	Token      string `json:"token"`
	Dir        string `json:"dir"`
	EtcdURL    string `json:"etcdUrl,omitempty"`
	Version    string `json:"version"`
	Pid        int    `json:"pid"`
}

// state is what a restart on the same directory must find again.
type state struct {
	Port      int    `json:"port"`
	EtcdPort  int    `json:"etcdPort"`
	EtcdPeer  int    `json:"etcdPeerPort"`
	Token     string `json:"token"`
	ServerURL string `json:"server"`
}

func runAPIServer(args []string) error {
	fs := flag.NewFlagSet("apiserver", flag.ContinueOnError)
	dir := fs.String("dir", "", "state directory (created if missing); a temporary one, removed at exit, when empty")
	port := fs.Int("port", 0, "secure port on 127.0.0.1 (0: a free one, or the one recorded in --dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	removeDir := false
	if *dir == "" {
		d, err := os.MkdirTemp("", "kube-test-cluster-")
		if err != nil {
			return err
		}
		*dir, removeDir = d, true
	}
	if removeDir {
		defer os.RemoveAll(*dir)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	st, err := loadOrCreateState(*dir, *port)
	if err != nil {
		return err
	}
	if err := ensurePKI(*dir); err != nil {
		return err
	}
	if err := writeKubeconfig(*dir, st.ServerURL, st.Token); err != nil {
		return err
	}

	etcd, err := startEtcd(*dir, st)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer etcd.Close()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", st.EtcdPort)

	p := func(name string) string { return filepath.Join(*dir, name) }
	cmd := apiserverapp.NewAPIServerCommand()
	cmd.SetArgs([]string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(st.Port),
		"--tls-cert-file=" + p("serving.crt"),
		"--tls-private-key-file=" + p("serving.key"),
		"--client-ca-file=" + p("ca.crt"),
		"--token-auth-file=" + p("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-account-issuer=" + st.ServerURL,
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		"--api-audiences=" + st.ServerURL,
		"--service-cluster-ip-range=10.0.0.0/24",
		// The apiserver's own Endpoints for the kubernetes Service may not hold 127.0.0.1.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + p("apiserver-certs"),
		"--profiling=false",
	})
	errc := make(chan error, 1)
	go func() { errc <- cmd.Execute() }()

	stop := stopSignal()
	if err := waitReady(st, p("ca.crt"), "/readyz", errc, stop); err != nil {
		server.RequestShutdown()
		return err
	}
	if err := printReady(ready{
		Server: st.ServerURL, Kubeconfig: p("kubeconfig"), CA: p("ca.crt"), Token: st.Token,
		Dir: *dir, EtcdURL: etcdURL, Version: version.Get().GitVersion, Pid: os.Getpid(),
	}); err != nil {
		return err
	}

	select {
	case err := <-errc:
		return fmt.Errorf("kube-apiserver stopped: %v", err)
	case <-stop:
	}
	// The apiserver installed its own SIGTERM handler; RequestShutdown covers the stdin case.
	server.RequestShutdown()
	select {
	case <-errc:
	case <-time.After(20 * time.Second):
		fmt.Fprintln(os.Stderr, "kube-test-cluster: kube-apiserver did not stop within 20s")
	}
	return nil
}

func runControllerManager(args []string) error {
	fs := flag.NewFlagSet("controller-manager", flag.ContinueOnError)
	dir := fs.String("dir", "", "the apiserver's state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	st, err := readState(*dir)
	if err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(*dir, name) }
	cmd := kcmapp.NewControllerManagerCommand()
	cmd.SetArgs([]string{
		"--kubeconfig=" + p("kubeconfig"),
		"--authentication-kubeconfig=" + p("kubeconfig"),
		"--authorization-kubeconfig=" + p("kubeconfig"),
		"--controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller," +
			"serviceaccount-token-controller,root-ca-certificate-publisher-controller",
		"--service-account-private-key-file=" + p("sa.key"),
		"--root-ca-file=" + p("ca.crt"),
		"--leader-elect=false",
		// Each controller acts as its own ServiceAccount (system:serviceaccount:kube-system:<name>),
		// as in production clusters, so webhooks and RBAC see the namespace controller, the garbage
		// collector, ... by name, not as the admin.
		"--use-service-account-credentials=true",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
	})
	errc := make(chan error, 1)
	go func() { errc <- cmd.Execute() }()
	stop := stopSignal()
	// Ready once the ServiceAccount controller made the default namespace's ServiceAccount.
	if err := waitReady(st, p("ca.crt"), "/api/v1/namespaces/default/serviceaccounts/default", errc, stop); err != nil {
		return err
	}
	if err := printReady(ready{
		Server: st.ServerURL, Kubeconfig: p("kubeconfig"), CA: p("ca.crt"), Token: st.Token,
		Dir: *dir, Version: version.Get().GitVersion, Pid: os.Getpid(),
	}); err != nil {
		return err
	}
	select {
	case err := <-errc:
		return fmt.Errorf("kube-controller-manager stopped: %v", err)
	case <-stop:
	}
	// The controller manager has no in-process shutdown call; its goroutines end with the process.
	return nil
}

// stopSignal closes when stdin reaches EOF (the parent went away) or on SIGTERM/SIGINT.
func stopSignal() <-chan struct{} {
	ch := make(chan struct{})
	closeOnce := make(chan struct{}, 1)
	done := func() {
		select {
		case closeOnce <- struct{}{}:
			close(ch)
		default:
		}
	}
	go func() {
		r := bufio.NewReader(os.Stdin)
		for {
			if _, err := r.ReadByte(); err != nil {
				done()
				return
			}
		}
	}()
	go func() {
		sig := make(chan os.Signal, 2)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		done()
	}()
	return ch
}

func waitReady(st *state, caFile, path string, errc <-chan error, stop <-chan struct{}) error {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, st.ServerURL+path, nil)
		req.Header.Set("Authorization", "Bearer "+st.Token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-errc:
			return fmt.Errorf("stopped before ready: %v", err)
		case <-stop:
			return errors.New("stopped before ready")
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ok within 3 minutes", path)
}

func printReady(r ready) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(os.Stdout, string(b))
	return err
}

func readState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	return &st, nil
}

func loadOrCreateState(dir string, port int) (*state, error) {
	if st, err := readState(dir); err == nil {
		if port != 0 && port != st.Port {
			return nil, fmt.Errorf("%s was made for port %d, not %d", dir, st.Port, port)
		}
		return st, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	st := &state{Port: port}
	var err error
	if st.Port == 0 {
		if st.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	if st.EtcdPort, err = freePort(); err != nil {
		return nil, err
	}
	if st.EtcdPeer, err = freePort(); err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	st.Token = hex.EncodeToString(tok)
	st.ServerURL = fmt.Sprintf("https://127.0.0.1:%d", st.Port)
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		return nil, err
	}
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n", st.Token)
	return st, os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o600)
}

// freePort picks a free port below the kernel's ephemeral range. The port is bound only seconds
// later (etcd, then the apiserver); a port from the ephemeral range (":0") can be taken meanwhile by
// any outgoing connection on the machine, which failed a CI run with "address already in use".
func freePort() (int, error) {
	lo, hi := 20000, 32767 // below Linux's default ephemeral range (32768-60999)
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var low int
		if _, err := fmt.Sscan(string(b), &low); err == nil && low > 2048 {
			hi = low - 1
			lo = max(1024, hi-12000)
		}
	}
	for range 200 {
		p := lo + mrand.IntN(hi-lo+1)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startEtcd(dir string, st *state) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "kube-test-cluster"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.LogLevel = "error"
	cfg.UnsafeNoFsync = true
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", st.EtcdPort)}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", st.EtcdPeer)}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.Name + "=" + peer.String()
	// As real clusters run it: progress notifications every 5s keep watch bookmarks flowing.
	cfg.WatchProgressNotifyInterval = 5 * time.Second
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, errors.New("etcd not ready within 60s")
	}
}

// ensurePKI makes, once per directory, a CA, a serving certificate for 127.0.0.1/::1/localhost and
// the ServiceAccount token signing key pair.
func ensurePKI(dir string) error {
	p := func(name string) string { return filepath.Join(dir, name) }
	if _, err := os.Stat(p("sa.pub")); err == nil {
		return nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kube-test-cluster-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	writes := []struct {
		name, typ string
		der       func() ([]byte, error)
	}{
		{"ca.crt", "CERTIFICATE", func() ([]byte, error) { return caDER, nil }},
		{"serving.crt", "CERTIFICATE", func() ([]byte, error) { return srvDER, nil }},
		{"serving.key", "PRIVATE KEY", func() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(srvKey) }},
		{"sa.key", "RSA PRIVATE KEY", func() ([]byte, error) { return x509.MarshalPKCS1PrivateKey(saKey), nil }},
		{"sa.pub", "PUBLIC KEY", func() ([]byte, error) { return x509.MarshalPKIXPublicKey(&saKey.PublicKey) }},
	}
	for _, w := range writes {
		der, err := w.der()
		if err != nil {
			return err
		}
		if err := os.WriteFile(p(w.name), pem.EncodeToMemory(&pem.Block{Type: w.typ, Bytes: der}), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func writeKubeconfig(dir, serverURL, token string) error {
	kc := strings.Join([]string{
		"apiVersion: v1",
		"kind: Config",
		"clusters:",
		"- name: kube-test-cluster",
		"  cluster:",
		"    server: " + serverURL,
		"    certificate-authority: " + filepath.Join(dir, "ca.crt"),
		"users:",
		"- name: admin",
		"  user:",
		"    token: " + token,
		"contexts:",
		"- name: kube-test-cluster",
		"  context:",
		"    cluster: kube-test-cluster",
		"    user: admin",
		"current-context: kube-test-cluster",
		"",
	}, "\n")
	return os.WriteFile(filepath.Join(dir, "kubeconfig"), []byte(kc), 0o600)
}
