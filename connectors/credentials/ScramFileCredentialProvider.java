/*
 * A MongoDB credential for the MongoDB Kafka sink connector, given to it through its custom-credential hook
 * (mongo.custom.auth.mechanism.enable / providerClass, connector 1.13+), so that connection.uri carries no user.
 *
 * Why: the connector validates a URI that names a user by asking the server for that user's privileges
 * (connectionStatus + rolesInfo). Real MongoDB answers; FerretDB 2, the local stand-in, keeps users as PostgreSQL
 * roles and answers no privileges, so the connector refuses to start although the user may write. With the
 * credential supplied here the connector skips that check and authenticates the same way (SCRAM-SHA-256).
 * The password reaches the connector config as ${file:...} (Kafka Connect's FileConfigProvider): neither the
 * REST API nor the logs show it. Built by services/jars.py with javac against the connector's own jar.
 */
package org.clinicalextractor.connect;

import com.mongodb.MongoCredential;
import com.mongodb.kafka.connect.util.custom.credentials.CustomCredentialProvider;
import java.util.Map;

public final class ScramFileCredentialProvider implements CustomCredentialProvider {
  static final String USER = "mongo.custom.auth.scram.username";
  static final String PASSWORD = "mongo.custom.auth.scram.password";
  static final String SOURCE = "mongo.custom.auth.scram.source";

  private MongoCredential credential;

  @Override
  public MongoCredential getCustomCredential(final Map<?, ?> configs) {
    if (credential == null) {
      init(configs);
    }
    return credential;
  }

  @Override
  public void validate(final Map<?, ?> configs) {
    for (String key : new String[] {USER, PASSWORD}) {
      Object value = configs.get(key);
      if (value == null || String.valueOf(value).isEmpty()) {
        throw new IllegalArgumentException(key + " is required by " + getClass().getName());
      }
    }
  }

  @Override
  public void init(final Map<?, ?> configs) {
    Object source = configs.get(SOURCE);
    credential =
        MongoCredential.createScramSha256Credential(
            String.valueOf(configs.get(USER)),
            source == null ? "admin" : String.valueOf(source),
            String.valueOf(configs.get(PASSWORD)).toCharArray());
  }
}
