package main

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// ErrNoKey is returned for -proto socketio without -key.
var ErrNoKey = errors.New("socketio needs -key")

// keyOf answers the key connection j of this process follows: key itself
// when there is one key, else key-<(first+j) mod keys>.
func keyOf(key string, keys, first, j int) string {
	if keys <= 1 {
		return key
	}
	return key + "-" + strconv.Itoa((first+j)%keys)
}

// requestURI answers the upgrade request's target for a connection
// following key: for native, u with its sdk_key replaced by key (u as given
// when key is empty) and, for a resume (since >= 0), since and epoch;
// Socket.IO registers its key after connecting, so u is used as given.
func requestURI(u *url.URL, proto, key string, since int64, epoch string) string {
	if proto != protoNative || (key == "" && since < 0) {
		return u.RequestURI()
	}
	v := *u
	q := v.Query()
	if key != "" {
		q.Set("sdk_key", key)
	}
	if since >= 0 {
		q.Set("since", fmt.Sprint(since))
		q.Set("epoch", epoch)
	}
	v.RawQuery = q.Encode()
	return v.RequestURI()
}
