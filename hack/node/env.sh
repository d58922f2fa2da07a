# Where the real node's files are (sourced by up.sh and down.sh): its state in the
# checkout's .cluster/node, its sockets under /run (short paths), the cluster's CA.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cluster="$root/.cluster"
state="$cluster/node"
run=/run/kabin-node
kubeconfig="$cluster/kubeconfig"
pki="$cluster/kwok/clusters/kabin/pki"
node=realnode-1
