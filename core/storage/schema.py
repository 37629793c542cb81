"""DuckDB schema of a workspace. Statements are idempotent; ``SCHEMA_VERSION`` guards against older apps.

Every derived table records what produced it (embedder key, k, seed), so a step whose inputs did not
change is not recomputed.
"""

from __future__ import annotations

SCHEMA_VERSION = 9

SCHEMA_STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE SEQUENCE IF NOT EXISTS dataset_ids START 1",
    """CREATE TABLE IF NOT EXISTS datasets (
        dataset_id INTEGER PRIMARY KEY,
        name VARCHAR UNIQUE NOT NULL,
        source_path VARCHAR,
        file_sha256 VARCHAR,
        shape VARCHAR,
        mapping VARCHAR,
        n_rows INTEGER,
        n_skipped INTEGER,
        skipped VARCHAR,
        created_at TIMESTAMP,
        embedder VARCHAR,
        embedder_key VARCHAR,
        embed_fields VARCHAR,
        seed INTEGER,
        k_grid VARCHAR,
        active_k INTEGER,
        best_k INTEGER,
        knee_k INTEGER,
        status VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS examples (
        dataset_id INTEGER,
        row_idx INTEGER,
        example_id VARCHAR,
        location VARCHAR,
        instruction VARCHAR,
        input VARCHAR,
        output VARCHAR,
        messages VARCHAR,
        original VARCHAR,
        content_hash VARCHAR,
        prompt_hash VARCHAR,
        text_hash VARCHAR,
        PRIMARY KEY (dataset_id, row_idx)
    )""",
    """CREATE TABLE IF NOT EXISTS embedding_cache (
        embedder_key VARCHAR,
        text_hash VARCHAR,
        vector FLOAT[],
        PRIMARY KEY (embedder_key, text_hash)
    )""",
    """CREATE TABLE IF NOT EXISTS k_sweep (
        dataset_id INTEGER,
        k INTEGER,
        inertia DOUBLE,
        silhouette DOUBLE,
        silhouette_sample INTEGER,
        min_size INTEGER,
        median_size DOUBLE,
        max_size INTEGER,
        seed INTEGER,
        PRIMARY KEY (dataset_id, k)
    )""",
    # added in schema 5: the rows k-means was fitted on when a large sweep fitted on a sample (NULL: every row)
    "ALTER TABLE k_sweep ADD COLUMN IF NOT EXISTS fit_rows INTEGER",
    """CREATE TABLE IF NOT EXISTS assignments (
        dataset_id INTEGER,
        k INTEGER,
        row_idx INTEGER,
        cluster_id INTEGER,
        PRIMARY KEY (dataset_id, k, row_idx)
    )""",
    """CREATE TABLE IF NOT EXISTS cluster_labels (
        dataset_id INTEGER,
        k INTEGER,
        cluster_id INTEGER,
        label VARCHAR,
        terms VARCHAR,
        size INTEGER,
        PRIMARY KEY (dataset_id, k, cluster_id)
    )""",
    # each cluster's row nearest its centre (NULL for clusterings stored before it existed)
    "ALTER TABLE cluster_labels ADD COLUMN IF NOT EXISTS representative_row INTEGER",
    """CREATE TABLE IF NOT EXISTS map_coords (
        dataset_id INTEGER,
        row_idx INTEGER,
        x FLOAT,
        y FLOAT,
        PRIMARY KEY (dataset_id, row_idx)
    )""",
    """CREATE TABLE IF NOT EXISTS cluster_decisions (
        dataset_id INTEGER,
        k INTEGER,
        cluster_id INTEGER,
        vetoed BOOLEAN NOT NULL DEFAULT FALSE,
        weight DOUBLE NOT NULL DEFAULT 1.0,
        PRIMARY KEY (dataset_id, k, cluster_id)
    )""",
    """CREATE TABLE IF NOT EXISTS example_vetoes (
        dataset_id INTEGER,
        example_id VARCHAR,
        vetoed BOOLEAN NOT NULL,
        PRIMARY KEY (dataset_id, example_id)
    )""",
    """CREATE TABLE IF NOT EXISTS score_runs (
        score_key VARCHAR PRIMARY KEY,
        scorer VARCHAR,
        params VARCHAR,
        created_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS scores (
        score_key VARCHAR,
        content_hash VARCHAR,
        name VARCHAR,
        value DOUBLE,
        PRIMARY KEY (score_key, content_hash, name)
    )""",
    "CREATE SEQUENCE IF NOT EXISTS selection_ids START 1",
    """CREATE TABLE IF NOT EXISTS selections (
        selection_id INTEGER PRIMARY KEY,
        dataset_id INTEGER,
        name VARCHAR,
        strategy VARCHAR,
        params VARCHAR,
        seed INTEGER,
        budget DOUBLE,
        size INTEGER,
        k INTEGER,
        pool_hash VARCHAR,
        pool_size INTEGER,
        decisions VARCHAR,
        score_keys VARCHAR,
        seconds DOUBLE,
        created_at TIMESTAMP
    )""",
    # added in schema 4: what a strategy reports about its run (e.g. a G2IS walk stopping short of the budget)
    "ALTER TABLE selections ADD COLUMN IF NOT EXISTS report VARCHAR",
    """CREATE TABLE IF NOT EXISTS selection_items (
        selection_id INTEGER,
        position INTEGER,
        row_idx INTEGER,
        example_id VARCHAR,
        PRIMARY KEY (selection_id, position)
    )""",
    """CREATE TABLE IF NOT EXISTS eval_results (
        eval_key VARCHAR PRIMARY KEY,
        model_id VARCHAR,
        adapter VARCHAR,
        set_name VARCHAR,
        set_sha256 VARCHAR,
        summary VARCHAR,
        examples VARCHAR,
        created_at TIMESTAMP
    )""",
    "CREATE SEQUENCE IF NOT EXISTS history_ids START 1",
    """CREATE TABLE IF NOT EXISTS history (
        history_id BIGINT PRIMARY KEY DEFAULT nextval('history_ids'),
        dataset_id INTEGER,
        changed_at TIMESTAMP,
        action VARCHAR,
        target VARCHAR,
        old_value VARCHAR,
        new_value VARCHAR
    )""",
    # added in schema 6: the user action a row belongs to (its batch: one id for every row of a bulk veto, an
    # undo or a revert) and who took it; a row of an older workspace is a batch of one (its own id), actor unknown
    "ALTER TABLE history ADD COLUMN IF NOT EXISTS batch_id BIGINT",
    "ALTER TABLE history ADD COLUMN IF NOT EXISTS actor VARCHAR",
    "UPDATE history SET batch_id = history_id WHERE batch_id IS NULL",
    # one row per batch (core/storage/history.py): its kind (change, undo, revert), why it was taken (the search
    # a bulk veto came from) and which batches it undoes; batch ids are drawn from history_ids, so every batch
    # id and history id is one number line in the order they were taken
    # the name a curator gave a cluster of one clustering; it replaces the computed label wherever one is shown
    """CREATE TABLE IF NOT EXISTS cluster_names (
        dataset_id INTEGER,
        k INTEGER,
        cluster_id INTEGER,
        name VARCHAR NOT NULL,
        PRIMARY KEY (dataset_id, k, cluster_id)
    )""",
    # free tags on clusters ("k=4/cluster=3") and examples ("example=<id>"), set by the curator (core/storage/tags.py)
    """CREATE TABLE IF NOT EXISTS tags (
        dataset_id INTEGER,
        ref VARCHAR,
        tag VARCHAR,
        PRIMARY KEY (dataset_id, ref, tag)
    )""",
    """CREATE TABLE IF NOT EXISTS history_batches (
        batch_id BIGINT PRIMARY KEY,
        dataset_id INTEGER,
        created_at TIMESTAMP,
        actor VARCHAR,
        kind VARCHAR,
        reason VARCHAR,
        undoes BIGINT[]
    )""",
    """CREATE TABLE IF NOT EXISTS gradient_sets (
        feature_key VARCHAR PRIMARY KEY,
        dataset_id INTEGER,
        role VARCHAR,
        target_name VARCHAR,
        target_path VARCHAR,
        target_sha256 VARCHAR,
        model_id VARCHAR,
        adapter_hash VARCHAR,
        d INTEGER,
        projection VARCHAR,
        seed INTEGER,
        n_rows INTEGER,
        config VARCHAR,
        created_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS gradient_edges (
        feature_key VARCHAR,
        src INTEGER,
        rank SMALLINT,
        dst INTEGER,
        weight REAL
    )""",
    # added in schema 7, with cluster edits (merge, split: cluster ids may now have gaps): the label rows a
    # cluster had for one membership (its row count and an XOR of its rows' hashes), so an edit undone gives
    # the clusters their labels back without reading their texts again (core/storage/cluster_edits.py)
    """CREATE TABLE IF NOT EXISTS cluster_label_memory (
        dataset_id INTEGER,
        k INTEGER,
        cluster_id INTEGER,
        members BIGINT,
        fingerprint UBIGINT,
        label VARCHAR,
        terms VARCHAR,
        size INTEGER,
        representative_row INTEGER,
        PRIMARY KEY (dataset_id, k, cluster_id, members, fingerprint)
    )""",
    # the keyword search's word index (core/storage/search.py): distinct words, and which rows hold each
    """CREATE TABLE IF NOT EXISTS search_vocab (
        dataset_id INTEGER,
        word_id INTEGER,
        word VARCHAR,
        n_rows INTEGER
    )""",
    """CREATE TABLE IF NOT EXISTS search_postings (
        dataset_id INTEGER,
        word_id INTEGER,
        row_idx INTEGER
    )""",
    # added in schema 8: each completed model stage run (embeddings, scores, gradient features, graph, hidden
    # states): the rows it computed and how long it took on which device, the workspace's own measured rates
    # (core/storage/stage_runs.py); a cached row costs nothing and is not counted
    """CREATE TABLE IF NOT EXISTS stage_runs (
        dataset_id INTEGER,
        stage VARCHAR,
        scorer VARCHAR,
        key VARCHAR,
        rows BIGINT,
        seconds DOUBLE,
        device VARCHAR,
        engine VARCHAR,
        created_at TIMESTAMP
    )""",
    # added in schema 8: the compute a saved selection consumed (seconds per stage, the device; JSON)
    "ALTER TABLE selections ADD COLUMN IF NOT EXISTS cost VARCHAR",
    # added in schema 8: the base model's pooled hidden states (RDS+) of a dataset's rows or of a target set,
    # one row per float16 matrix in <workspace>/hidden/<feature_key>.npy (core/storage/hidden.py)
    """CREATE TABLE IF NOT EXISTS hidden_sets (
        feature_key VARCHAR PRIMARY KEY,
        dataset_id INTEGER,
        role VARCHAR,
        target_name VARCHAR,
        target_path VARCHAR,
        target_sha256 VARCHAR,
        model_id VARCHAR,
        precision VARCHAR,
        max_length INTEGER,
        pooling VARCHAR,
        d INTEGER,
        n_rows INTEGER,
        config VARCHAR,
        created_at TIMESTAMP
    )""",
    # added in schema 9: where a dataset read through Hugging Face datasets came from (JSON: the source as given,
    # loader, config, split, streaming, fingerprint, hub revision, the rows' SHA-256); NULL for a file
    "ALTER TABLE datasets ADD COLUMN IF NOT EXISTS source VARCHAR",
)
