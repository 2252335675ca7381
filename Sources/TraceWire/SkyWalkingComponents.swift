/// SkyWalking's component ids named as SkyWalking names them (the OAP's
/// `component-libraries.yml`: the Java, .NET, Node.js, Go, Lua, Python, PHP, C++, JavaScript
/// and Rust agents' ids). An id not listed is shown as its number.
package enum SkyWalkingComponents {
    package static func name(_ id: Int32) -> String { names[id] ?? String(id) }

    static let names: [Int32: String] = [
        0: "Unknown", 1: "Tomcat", 2: "HttpClient", 3: "Dubbo", 4: "H2", 5: "Mysql", 6: "ORACLE", 7: "Redis",
        8: "Motan", 9: "MongoDB", 10: "Resin", 11: "Feign", 12: "OKHttp", 13: "SpringRestTemplate", 14: "SpringMVC",
        15: "Struts2", 16: "NutzMVC", 17: "NutzHttp", 18: "JettyClient", 19: "JettyServer", 20: "Memcached",
        21: "ShardingJDBC", 22: "PostgreSQL", 23: "GRPC", 24: "ElasticJob", 25: "RocketMQ", 26: "httpasyncclient",
        27: "Kafka", 28: "ServiceComb", 29: "Hystrix", 30: "Jedis", 31: "SQLite", 32: "h2-jdbc-driver",
        33: "mysql-connector-java", 34: "ojdbc", 35: "Spymemcached", 36: "Xmemcached", 37: "postgresql-jdbc-driver",
        38: "rocketMQ-producer", 39: "rocketMQ-consumer", 40: "kafka-producer", 41: "kafka-consumer",
        42: "mongodb-driver", 43: "SOFARPC", 44: "ActiveMQ", 45: "activemq-producer", 46: "activemq-consumer",
        47: "Elasticsearch", 48: "transport-client", 49: "http", 50: "rpc", 51: "RabbitMQ", 52: "rabbitmq-producer",
        53: "rabbitmq-consumer", 54: "Canal", 55: "Gson", 56: "Redisson", 57: "Lettuce", 58: "Zookeeper", 59: "Vertx",
        60: "ShardingSphere", 61: "spring-cloud-gateway", 62: "RESTEasy", 63: "SolrJ", 64: "Solr", 65: "SpringAsync",
        66: "JdkHttp", 67: "spring-webflux", 68: "Play", 69: "cassandra-java-driver", 70: "Cassandra", 71: "Light4J",
        72: "Pulsar", 73: "pulsar-producer", 74: "pulsar-consumer", 75: "Ehcache", 76: "SocketIO",
        77: "rest-high-level-client", 78: "spring-tx", 79: "Armeria", 80: "JdkThreading", 81: "KotlinCoroutine",
        82: "AvroServer", 83: "AvroClient", 84: "Undertow", 85: "Finagle", 86: "Mariadb", 87: "mariadb-jdbc",
        88: "quasar", 89: "InfluxDB", 90: "influxdb-java", 91: "brpc-java", 92: "GraphQL", 93: "spring-annotation",
        94: "HBase", 95: "spring-kafka-consumer", 96: "SpringScheduled", 97: "quartz-scheduler", 98: "xxl-job",
        99: "spring-webflux-webclient", 100: "thrift-server", 101: "thrift-client", 102: "AsyncHttpClient", 103: "dbcp",
        104: "mssql-jdbc-driver", 105: "Apache-CXF", 106: "dolphinscheduler", 107: "JsonRpc", 108: "seata",
        109: "MyBatis", 110: "tcp", 111: "AzureHttpTrigger", 112: "Neo4j", 113: "Sentinel", 114: "GuavaCache",
        115: "AlibabaDruid", 116: "HikariCP", 117: "Fastjson", 118: "Jackson", 119: "ClickHouse-jdbc-driver",
        120: "ClickHouse", 121: "Apache-Kylin-jdbc-driver", 122: "Apache-Kylin", 123: "GuavaEventBus",
        124: "AWSLambdaTrigger", 125: "AWSLambdaGatewayAPIHTTP", 126: "AWSLambdaGatewayAPIREST", 127: "Apache-ShenYu",
        128: "Hutool", 129: "https", 130: "tls", 131: "Micronaut", 132: "NATS", 133: "Impala-jdbc-driver",
        134: "Impala", 135: "EventMesh", 136: "eventmesh-producer", 137: "eventmesh-consumer", 138: "AWSDynamoDB",
        139: "AWSSNS", 140: "AWSSQS", 141: "Micrometer", 142: "mtls", 143: "amqp", 144: "amqp-producer",
        145: "amqp-consumer", 3001: "AspNetCore", 3002: "EntityFrameworkCore", 3003: "SqlClient", 3004: "CAP",
        3005: "StackExchange.Redis", 3006: "SqlServer", 3007: "Npgsql", 3008: "MySqlConnector",
        3009: "EntityFrameworkCore.InMemory", 3010: "EntityFrameworkCore.SqlServer", 3011: "EntityFrameworkCore.Sqlite",
        3012: "Pomelo.EntityFrameworkCore.MySql", 3013: "Npgsql.EntityFrameworkCore.PostgreSQL",
        3014: "InMemoryDatabase", 3015: "AspNet", 3016: "SmartSql", 3017: "FreeSql", 3018: "FreeRedis",
        4001: "HttpServer", 4002: "Express", 4003: "Egg", 4004: "Koa", 4005: "Axios", 4006: "Mongoose",
        5001: "ServiceCombMesher", 5002: "ServiceCombServiceCenter", 5003: "MOSN", 5004: "GoHttpServer",
        5005: "GoHttpClient", 5006: "Gin", 5007: "Gear", 5008: "GoMicroClient", 5009: "GoMicroServer", 5010: "Kratos",
        5012: "GoMysql", 5013: "OpenFunction", 6000: "Nginx", 6001: "Kong", 6002: "APISIX", 7000: "Python",
        7001: "Flask", 7002: "Requests", 7003: "PyMysql", 7004: "Django", 7005: "Tornado", 7006: "Urllib3",
        7007: "Sanic", 7008: "AioHttp", 7009: "Pyramid", 7010: "Psychopg", 7011: "Celery", 7012: "Falcon",
        7013: "MysqlClient", 7014: "FastAPI", 7015: "Bottle", 7016: "AsyncPG", 7017: "AIORedis", 7018: "Websockets",
        7019: "HTTPX", 8001: "PHP", 8002: "cURL", 8003: "PDO", 8004: "Mysqli", 8005: "Yar", 8006: "Predis",
        9000: "EnvoyProxy", 10000: "JavaScript", 10001: "ajax", 11000: "Rust",
    ]
}
