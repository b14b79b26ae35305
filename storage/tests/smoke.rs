mod common;

use common::*;
use odradek_storage::{LogConfig, Offset};

#[test]
fn append_read_close_reopen() {
    run(|| async {
        let tmp = tempdir();
        let shard = shard();
        let log = open(tmp.path(), LogConfig::default(), &shard).await;
        let b = batch(3, 100, 1_000, 1);
        let r = log.append(b.clone(), EPOCH_0, 5_000).expect("append");
        assert_eq!(r.base_offset, Offset(0));
        assert_eq!(r.last_offset, Offset(2));
        r.written().await.expect("written");
        r.durable().await.expect("durable");
        assert_eq!(log.written_end_offset(), Offset(3));
        assert_eq!(log.durable_end_offset(), Offset(3));
        let out = log.read(Offset(1), 1 << 20, Offset(3)).await.expect("read");
        assert_eq!(bytes_of(&out).await, stored(&b, 0));
        log.close().await.expect("close");
        drop(log);
        let log = open(tmp.path(), LogConfig::default(), &shard).await;
        assert_eq!(log.log_end_offset(), Offset(3));
        let out = log.read(Offset(0), 1 << 20, Offset(3)).await.expect("read");
        assert_eq!(bytes_of(&out).await, stored(&b, 0));
        let r = log
            .append(batch(2, 10, 2_000, 2), EPOCH_0, 6_000)
            .expect("append");
        assert_eq!(r.base_offset, Offset(3));
        r.durable().await.expect("durable");
        log.close().await.expect("close");
    });
}
