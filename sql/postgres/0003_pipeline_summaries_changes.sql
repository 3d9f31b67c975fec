-- Each group's row carries a number that changes whenever the row does,
-- and is never given out twice: a replica that keeps a group's statistics
-- knows them current while the number it read them with is unchanged,
-- because every change to a group's runs changes its row in the same
-- transaction (the triggers of the second migration). A row made again
-- (a full recount) gets a new number too.
CREATE SEQUENCE pipeline_summaries_changes;
ALTER TABLE pipeline_summaries
    ADD COLUMN changed bigint NOT NULL DEFAULT nextval('pipeline_summaries_changes');

CREATE FUNCTION pipeline_summaries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.changed := nextval('pipeline_summaries_changes');
    RETURN NEW;
END
$$;

CREATE TRIGGER pipeline_summaries_changed BEFORE UPDATE ON pipeline_summaries
    FOR EACH ROW EXECUTE FUNCTION pipeline_summaries_changed();
