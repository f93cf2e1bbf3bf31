#!/usr/bin/env bash
# The image's entry point (conf/examples/Dockerfile). Spark on Kubernetes (spark-submit's k8s master,
# and so the spark-operator's SparkApplication, conf/examples/spark-application.yaml) starts its pods
# with `driver ARGS...` or `executor`, and expects the image to turn those into a client-mode
# spark-submit or an executor JVM, as Spark's own images do; anything else is an export-jobs command
# (`serve`, `run-pending`, ...).
set -euo pipefail

: "${SPARK_HOME:=$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}"
: "${JAVA_HOME:=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
if [[ "${1:-}" == driver || "${1:-}" == executor ]]; then
  unset SPARK_LOCAL_IP  # the image's loopback default is for `serve` on one host; pods talk to each other
fi

case "${1:-}" in
  driver)
    shift
    # The driver pod runs the application itself: client mode, listening on the pod's address.
    exec "$SPARK_HOME/bin/spark-submit" --deploy-mode client \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?set by Spark on Kubernetes}" "$@"
    ;;
  executor)
    shift
    # Spark on Kubernetes passes an executor's settings as environment variables; its JVM options as
    # SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in that order.
    java_options=()
    for n in $(compgen -e | sed -n 's/^SPARK_JAVA_OPT_\([0-9]*\)$/\1/p' | sort -n); do
      name="SPARK_JAVA_OPT_$n"
      java_options+=("${!name}")
    done
    exec "$JAVA_HOME/bin/java" "${java_options[@]}" \
      "-Xms$SPARK_EXECUTOR_MEMORY" "-Xmx$SPARK_EXECUTOR_MEMORY" \
      -cp "${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*${SPARK_EXTRA_CLASSPATH:+:$SPARK_EXTRA_CLASSPATH}" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES" \
      --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "$SPARK_EXECUTOR_POD_NAME" "$@"
    ;;
  *)
    exec export-jobs "$@"
    ;;
esac
