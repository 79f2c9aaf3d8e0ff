package chat

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the chat server's Prometheus collectors.
type Metrics struct {
	Connections prometheus.Gauge
	Rooms       prometheus.Gauge
	Messages    prometheus.Counter
	Duplicates  prometheus.Counter
	Deliveries  prometheus.Counter
	Drops       *prometheus.CounterVec
	Handshakes  *prometheus.CounterVec
	Resumes     *prometheus.CounterVec
	// Moves counts connections moved between processes at a drain, by
	// outcome: sent, received, or why one fell back to close 1012.
	Moves *prometheus.CounterVec
	// MoveSeconds is the time from a client's held to its connection
	// being carried on here (the receiving side observes it).
	MoveSeconds prometheus.Histogram
}

// NewMetrics creates the collectors and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_connections", Help: "Open WebSocket connections."}),
		Rooms: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "chat_rooms", Help: "Rooms held by this process."}),
		Messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_messages_total", Help: "Messages accepted or replicated into rooms."}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_duplicates_total", Help: "Resent messages answered with their original ack."}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "chat_deliveries_total", Help: "Message frames queued to connections."}),
		Drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_drops_total", Help: "Frames refused or connections dropped, by reason."}, []string{"reason"}),
		Handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_handshakes_total", Help: "WebSocket upgrade attempts, by result."}, []string{"result"}),
		Resumes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_resumes_total", Help: "Welcomes sent, by resume outcome."}, []string{"resume"}),
		Moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chat_moves_total", Help: "Connections moved at a drain, by outcome."}, []string{"result"}),
		MoveSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chat_move_seconds", Help: "From a moved client's held to its go being queued here.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
	}
	if reg != nil {
		reg.MustRegister(m.Connections, m.Rooms, m.Messages, m.Duplicates, m.Deliveries, m.Drops, m.Handshakes, m.Resumes, m.Moves, m.MoveSeconds)
	}
	return m
}
