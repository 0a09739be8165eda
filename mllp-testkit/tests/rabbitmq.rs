//! The private RabbitMQ nodes of the test kit start, take AMQP connections, survive a kill and
//! form a cluster.

use std::net::TcpStream;

use mllp_testkit::rabbitmq::{self, RabbitCluster, RabbitNode};

#[test]
fn a_private_node_starts_restarts_after_a_kill_and_stops() {
    if !rabbitmq::available() {
        return mllp_testkit::skip("rabbitmq-server is not installed");
    }
    let mut node = RabbitNode::start("kit");
    assert!(TcpStream::connect(("127.0.0.1", node.port())).is_ok());
    node.kill();
    assert!(TcpStream::connect(("127.0.0.1", node.port())).is_err());
    node.restart();
    let out = node.ctl(&["list_queues", "name"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn three_private_nodes_form_a_cluster() {
    if !rabbitmq::available() {
        return mllp_testkit::skip("rabbitmq-server is not installed");
    }
    let mut cluster = RabbitCluster::start("kitc", 3);
    assert_eq!(cluster.len(), 3);
    cluster.stop(2);
    let out = cluster.ctl(0, &["cluster_status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(cluster.url("%2f").matches("127.0.0.1:").count() == 3);
}
