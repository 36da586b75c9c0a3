package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pushgateway/push_gateway/hub"
)

// ErrBadNode is returned by Announce for a node without an ID or a TTL
// under a millisecond.
var ErrBadNode = errors.New("redis broker: node needs an id and a ttl of 1ms or more")

// The registry: a sorted set of node IDs scored by expiry (Unix ms) and a
// hash of node ID to the node's JSON, under one hash tag so that its
// scripts run on one Redis Cluster slot.
func (b *Broker) registryKeys() []string {
	return []string{b.prefix + ":{nodes}:z", b.prefix + ":{nodes}:h"}
}

// Announce records n until ttl from now (Redis's clock). Updated is set to
// now when zero.
func (b *Broker) Announce(ctx context.Context, n hub.Node, ttl time.Duration) error {
	if n.ID == "" || ttl < time.Millisecond {
		return ErrBadNode
	}
	if n.Updated == 0 {
		n.Updated = time.Now().UnixMilli()
	}
	j, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("redis broker: encoding node: %w", err)
	}
	if err := announceScript.Run(ctx, b.client, b.registryKeys(), n.ID, j, ttl.Milliseconds()).Err(); err != nil {
		return unavailable("announcing node", err)
	}
	return nil
}

// Leave removes the node with id at once.
func (b *Broker) Leave(ctx context.Context, id string) error {
	if err := leaveScript.Run(ctx, b.client, b.registryKeys(), id).Err(); err != nil {
		return unavailable("removing node", err)
	}
	return nil
}

// Nodes lists the live nodes, least connections first, then by ID.
func (b *Broker) Nodes(ctx context.Context) ([]hub.Node, error) {
	raw, err := nodesScript.Run(ctx, b.client, b.registryKeys()).StringSlice()
	if err != nil {
		return nil, unavailable("listing nodes", err)
	}
	nodes := make([]hub.Node, 0, len(raw))
	for _, r := range raw {
		var n hub.Node
		if err := json.Unmarshal([]byte(r), &n); err != nil {
			b.log.Warn("redis broker skipped a malformed node entry")
			continue
		}
		nodes = append(nodes, n)
	}
	slices.SortFunc(nodes, func(a, c hub.Node) int {
		return cmp.Or(cmp.Compare(a.Connections, c.Connections), cmp.Compare(a.ID, c.ID))
	})
	return nodes, nil
}
